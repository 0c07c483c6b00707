"""The catalogue versions in force over time, as the pricer sees them.

An event is priced by the snapshot in force at its timestamp; a name that snapshot does not know
is looked up in the newer ones (a model listed later was usually sold earlier too). The newest
snapshot is loaded at once, older ones when an event first needs them. Each process re-reads
the list of snapshots every `REFRESH_S`, so a sync in the worker reaches every API process; if
the database cannot be read, the catalogue in memory stays in use and ingestion goes on.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from genai_prices.data_snapshot import DataSnapshot
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from margindash.pricing.catalogue import Catalogue, CatalogueModel
from margindash.pricing.payload import InvalidCatalogue, bundled_label
from margindash.pricing.snapshots import SnapshotInfo, accepted_snapshots, snapshot_providers

log = logging.getLogger(__name__)
REFRESH_S = 30.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HISTORY_TOKENS = itertools.count(1)
_LOADED_CATALOGUES = 16


@lru_cache(maxsize=1)
def bundled_catalogue() -> Catalogue:
    """The data bundled with genai-prices, shared by every pricer of the process."""
    return Catalogue()


# Catalogues by (content, label): pricers of one process share them and their resolution caches.
_catalogues: OrderedDict[tuple[str, str], Catalogue] = OrderedDict()
_catalogues_lock = threading.Lock()


def load_catalogue(engine: Engine, snapshot: SnapshotInfo) -> Catalogue:
    """The catalogue of a stored snapshot (parsed once per process)."""
    key = (snapshot.sha256, snapshot.label)
    with _catalogues_lock:
        found = _catalogues.get(key)
        if found is not None:
            _catalogues.move_to_end(key)
            return found
    if snapshot.source == bundled_label():
        # The installed package's own data: no need to parse the stored copy.
        data = bundled_catalogue().data
    else:
        with engine.connect() as conn:
            data = DataSnapshot(snapshot_providers(conn, snapshot.id), from_auto_update=False)
    catalogue = Catalogue(data, source=snapshot.label, snapshot_id=snapshot.id)
    with _catalogues_lock:
        _catalogues[key] = catalogue
        while len(_catalogues) > _LOADED_CATALOGUES:
            _catalogues.popitem(last=False)
    return catalogue


class CatalogueVersion:
    """One catalogue in force from `effective_from` (None: since forever), loaded on first use."""

    def __init__(
        self,
        effective_from: datetime | None,
        *,
        snapshot: SnapshotInfo | None = None,
        engine: Engine | None = None,
        catalogue: Catalogue | None = None,
    ):
        self.effective_from = effective_from
        self.snapshot = snapshot
        self._engine = engine
        self._catalogue = catalogue

    @property
    def loaded(self) -> bool:
        return self._catalogue is not None

    def catalogue(self) -> Catalogue | None:
        """The catalogue, or None when it cannot be read right now (tried again next time)."""
        if self._catalogue is None and self.snapshot is not None and self._engine is not None:
            try:
                self._catalogue = load_catalogue(self._engine, self.snapshot)
            except (SQLAlchemyError, InvalidCatalogue) as exc:
                log.warning("price snapshot %s cannot be loaded: %s", self.snapshot.id, exc)
        return self._catalogue


class CatalogueHistory:
    """Catalogue versions in the order they took effect; the last one is in force now."""

    def __init__(self, versions: Sequence[CatalogueVersion]):
        if not versions:
            raise ValueError("a catalogue history needs at least one version")
        self.versions = tuple(versions)
        self._starts = [v.effective_from or _EPOCH for v in self.versions]
        self._latest = self.versions[-1]
        self._latest_from = self._starts[-1]
        self.token = next(_HISTORY_TOKENS)  # identifies it in caches (ids can be reused)
        # The days (in any UTC offset, so one either side) on which a version takes effect:
        # the only days whose calls are not all priced by one version.
        self.change_days = frozenset(
            start.date() + timedelta(days=shift)
            for start in self._starts[1:]
            for shift in (-1, 0, 1)
        )

    @classmethod
    def of(cls, catalogue: Catalogue) -> CatalogueHistory:
        """A history of one catalogue, in force since forever."""
        return cls([CatalogueVersion(None, catalogue=catalogue)])

    @property
    def current(self) -> Catalogue:
        """The catalogue in force now (the newest one that can be read)."""
        for version in reversed(self.versions):
            catalogue = version.catalogue()
            if catalogue is not None:
                return catalogue
        return bundled_catalogue()

    def _index_at(self, at: datetime) -> int:
        if at >= self._latest_from:  # most events: priced by the newest catalogue
            return len(self.versions) - 1
        return max(bisect_right(self._starts, at) - 1, 0)

    def version_at(self, at: datetime) -> tuple[int, int]:
        """Which version prices `at` (the same answer means the same prices for a name)."""
        return (self.token, self._index_at(at))

    def resolve_at(
        self, model_name: str, provider_hint: str | None, at: datetime
    ) -> tuple[Catalogue, CatalogueModel] | None:
        """The model a name refers to at `at`, and the catalogue whose prices apply."""
        for version in self.versions[self._index_at(at) :]:
            catalogue = version.catalogue()
            if catalogue is None:
                continue
            model = catalogue.resolve(model_name, provider_hint)
            if model is not None:
                return catalogue, model
        return None


class LiveCatalogue:
    """The catalogue history stored in a database, kept current in this process."""

    def __init__(self, engine: Engine, *, refresh_s: float = REFRESH_S):
        self.engine = engine
        self.refresh_s = refresh_s
        # Until the database has been read (or when it never was seeded): the bundled data.
        self._history = CatalogueHistory.of(bundled_catalogue())
        self._signature: tuple[tuple[int, datetime | None], ...] | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()

    def history(self) -> CatalogueHistory:
        if time.monotonic() >= self._next_check:
            self.refresh()
        return self._history

    def refresh(self, *, wait: bool = False) -> None:
        """Re-read the list of snapshots; keep what is loaded if it cannot be read."""
        if not self._lock.acquire(blocking=wait):
            return  # another thread is refreshing; go on with the current history
        try:
            self._next_check = time.monotonic() + self.refresh_s
            try:
                with self.engine.connect() as conn:
                    snapshots = accepted_snapshots(conn)
            except SQLAlchemyError as exc:
                log.warning("price catalogue not refreshed, keeping the last one: %s", exc)
                return
            signature = tuple((s.id, s.effective_from) for s in snapshots)
            if signature != self._signature:
                self._replace(snapshots, signature)
        finally:
            self._lock.release()

    def _replace(
        self, snapshots: list[SnapshotInfo], signature: tuple[tuple[int, datetime | None], ...]
    ) -> None:
        if not snapshots:
            self._history, self._signature = CatalogueHistory.of(bundled_catalogue()), signature
            return
        loaded = {
            (v.snapshot.id, v.effective_from): v
            for v in self._history.versions
            if v.snapshot is not None and v.loaded
        }
        versions = [
            loaded.get((s.id, s.effective_from))
            or CatalogueVersion(s.effective_from, snapshot=s, engine=self.engine)
            for s in snapshots
        ]
        if versions[-1].catalogue() is None:
            return  # the newest snapshot cannot be read yet: keep pricing with what we have
        self._history, self._signature = CatalogueHistory(versions), signature
