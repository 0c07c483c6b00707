"""The bundled genai-prices catalogue, with a resolution cache and exact integer pricing.

genai-prices is the reference calculator; this module resolves a name once per process and
compiles each price into integer pico-USD per token, so pricing an event is a few integer
multiplications (genai-prices' own `calc_price` is ~60x slower). Prices that do not compile
(sub-pico prices) are computed with `Decimal` instead; both paths are tested against
`calc_price` for every catalogue model.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib.metadata import version
from typing import NamedTuple, cast

from genai_prices import types as gp
from genai_prices.data_snapshot import DataSnapshot, get_snapshot

from margindash.pricing.normalise import candidates

PICOS_PER_NANO = 1000
_HALF_NANO = PICOS_PER_NANO // 2
_PICOS_PER_MTOK_USD = 1_000_000  # $1 per 1M tokens = 1,000,000 pico-USD per token
# Price keys that apply only to usage margindash never records (audio, images, searches…).
_KEYS_NOT_FOR_TEXT_TOKENS = frozenset(
    {
        "cache_write_1h_mtok",
        "web_searches_kcount",
        "storage_searches_kcount",
        "input_audio_mtok",
        "output_audio_mtok",
        "cache_audio_read_mtok",
        "audio_hours",
        "input_audio_hours",
        "input_image_mtok",
        "output_image_mtok",
        "cache_image_read_mtok",
        "input_video_mtok",
        "output_video_mtok",
        "input_document_kpages",
        "input_annotated_document_kpages",
        "input_text_messages_kcount",
        "output_citation_mtok",
        "input_mchars",
    }
)
_TOKEN_KEYS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok")


class TokenCounts(NamedTuple):
    """Token counts of one call (OpenAI convention: cached ⊂ prompt, reasoning ⊂ completion)."""

    prompt: int
    completion: int
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass(frozen=True, slots=True)
class CatalogueModel:
    """A model as resolved in the catalogue."""

    provider_id: str
    model_id: str
    info: gp.ModelInfo
    provider: gp.Provider

    @property
    def key(self) -> str:
        return f"{self.provider_id}:{self.model_id}"


class TieredPico(NamedTuple):
    """A per-token price that changes with the call's total input tokens (cliff tiers)."""

    base: int
    tiers: tuple[tuple[int, int], ...]  # (start, price) with the highest start first

    def at(self, total_input: int) -> int:
        for start, price in self.tiers:
            if total_input > start:
                return price
        return self.base


PicoPrice = int | TieredPico


@dataclass(frozen=True, slots=True)
class CompiledPrice:
    """Per-token prices in integer pico-USD; None means that kind of token is not priced."""

    input: PicoPrice | None
    cache_read: PicoPrice | None
    cache_write: PicoPrice | None
    output: PicoPrice | None
    reasoning: PicoPrice | None
    per_request: int
    # Without tiers: (input, cache read, cache write, output, reasoning) as charged, with the
    # fallbacks of `cost_picos` already applied, so most calls cost five multiplications.
    flat: tuple[int, int, int, int, int] | None = field(init=False, default=None)
    # `flat` and `per_request` in nano-USD when all are whole nano-USD (most list prices are):
    # a call's cost is then exact in nano-USD with no rounding step (see `PricePlan.quote`).
    nanos: tuple[int, int, int, int, int, int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        prices = (self.input, self.cache_read, self.cache_write, self.output, self.reasoning)
        if any(isinstance(p, TieredPico) for p in prices):
            return
        input_price, output = self.input or 0, self.output or 0
        flat = (
            input_price,
            input_price if self.cache_read is None else self.cache_read,
            input_price if self.cache_write is None else self.cache_write,
            output,
            output if self.reasoning is None else self.reasoning,
        )
        object.__setattr__(self, "flat", flat)
        picos = cast(tuple[int, ...], (*flat, self.per_request))  # no tiers, checked above
        if all(p % PICOS_PER_NANO == 0 for p in picos):
            object.__setattr__(self, "nanos", tuple(p // PICOS_PER_NANO for p in picos))

    def cost_picos(self, tokens: TokenCounts) -> int:
        """The cost of a call in pico-USD (exact)."""
        prompt, completion, cached, cache_write, reasoning = tokens
        if self.flat is not None:
            input_price, read, write, output, thinking = self.flat
            return (
                (prompt - cached - cache_write) * input_price
                + cached * read
                + cache_write * write
                + (completion - reasoning) * output
                + reasoning * thinking
                + self.per_request
            )
        input_price = _at(self.input, prompt)
        cache_read = _at(self.cache_read, prompt)
        cache_write_price = _at(self.cache_write, prompt)
        output = _at(self.output, prompt)
        reasoning_price = _at(self.reasoning, prompt)
        cost = (prompt - cached - cache_write) * input_price + self.per_request
        # Unpriced cache reads/writes are charged as ordinary input, as genai-prices does.
        cost += cached * (cache_read if self.cache_read is not None else input_price)
        cost += cache_write * (cache_write_price if self.cache_write is not None else input_price)
        if self.reasoning is not None:
            cost += (completion - reasoning) * output + reasoning * reasoning_price
        else:
            cost += completion * output
        return cost


def _at(price: PicoPrice | None, total_input: int) -> int:
    if price is None:
        return 0
    if isinstance(price, int):
        return price
    return price.at(total_input)


class NotPricedPerToken(ValueError):
    """The model's prices do not cover text tokens, so a cost would be wrong (e.g. $0)."""


def picos_to_nanos(picos: int) -> int:
    """Round pico-USD to nano-USD, half to even."""
    nanos, rest = divmod(picos, PICOS_PER_NANO)
    if rest > _HALF_NANO or (rest == _HALF_NANO and nanos & 1):
        nanos += 1
    return nanos


def _compile_value(value: Decimal | gp.TieredPrices | None, scale: int) -> PicoPrice | None:
    if value is None:
        return None
    if isinstance(value, gp.TieredPrices):
        base = _compile_value(value.base, scale)
        tiers = tuple(
            (tier.start, _compile_value(tier.price, scale)) for tier in reversed(value.tiers)
        )
        assert isinstance(base, int)
        return TieredPico(base, tiers)  # type: ignore[arg-type]
    scaled = value * scale
    if scaled != scaled.to_integral_value():
        raise ArithmeticError("price finer than a pico-USD per token")
    return int(scaled)


def _price_keys(price: gp.ModelPrice) -> set[str]:
    return {k for k, v in price.__dict__.items() if v is not None and not k.startswith("_")}


def priced_per_token(price: gp.ModelPrice) -> bool:
    """Whether a price covers text tokens at all; if not, a token-based cost would be $0."""
    return bool(_price_keys(price) & {"input_mtok", "output_mtok", "requests_kcount"})


def compile_price(price: gp.ModelPrice) -> CompiledPrice | None:
    """Integer prices for a genai-prices ModelPrice, or None when it needs the Decimal path."""
    keys = _price_keys(price)
    supported = {*_TOKEN_KEYS, "output_reasoning_mtok", "requests_kcount"}
    if keys - supported - _KEYS_NOT_FOR_TEXT_TOKENS:
        return None
    try:
        requests = _compile_value(price.requests_kcount, _PICOS_PER_MTOK_USD * 1000)
        return CompiledPrice(
            input=_compile_value(price.input_mtok, _PICOS_PER_MTOK_USD),
            cache_read=_compile_value(price.cache_read_mtok, _PICOS_PER_MTOK_USD),
            cache_write=_compile_value(price.cache_write_mtok, _PICOS_PER_MTOK_USD),
            output=_compile_value(price.output_mtok, _PICOS_PER_MTOK_USD),
            reasoning=_compile_value(price.output_reasoning_mtok, _PICOS_PER_MTOK_USD),
            per_request=requests if isinstance(requests, int) else 0,
        )
    except ArithmeticError:
        return None


def genai_usage(tokens: TokenCounts) -> gp.Usage:
    """The same counts in genai-prices' terms (its `input_tokens` includes cache reads/writes)."""
    values = {
        "input_tokens": tokens.prompt,
        "output_tokens": tokens.completion,
        "cache_read_tokens": tokens.cached,
        "cache_write_tokens": tokens.cache_write,
        "output_reasoning_tokens": tokens.reasoning,
    }
    return gp.Usage(**{k: v for k, v in values.items() if v})


@dataclass(frozen=True, slots=True)
class Rate:
    """A model's price in force at one time, ready to apply to a call's token counts."""

    key: str  # provider:model
    price: gp.ModelPrice
    compiled: CompiledPrice | None  # None: prices finer than a pico-USD, use Decimals
    timed: bool  # the price changes with the time of day, so it holds for that instant only

    def cost_nanos(self, tokens: TokenCounts) -> int:
        """The exact cost of a call in nano-USD."""
        if self.compiled is not None:
            return picos_to_nanos(self.compiled.cost_picos(tokens))
        if not priced_per_token(self.price):
            raise NotPricedPerToken(f"{self.key} has no per-token price in the catalogue")
        total = self.price.calc_price(genai_usage(tokens))["total_price"]
        return int((total * 1_000_000_000).to_integral_value())


def _price_changes(info: gp.ModelInfo) -> tuple[time, ...]:
    """The UTC times of day at which a model's price may change; none if it holds all day.

    Between two of them every time-of-day constraint stays in or out of force, so genai-prices
    picks one price for the whole stretch of the day.
    """
    if isinstance(info.prices, gp.ModelPrice):
        return ()
    changes: set[time] = set()
    for conditional in info.prices:
        if isinstance(constraint := conditional.constraint, gp.TimeOfDateConstraint):
            changes.update((_utc_time(constraint.start_time), _utc_time(constraint.end_time)))
    return tuple(sorted(changes))


def _utc_time(value: time) -> time:
    """A naive UTC time of day; naive times are UTC already (as genai-prices reads them)."""
    if value.tzinfo is None:
        return value
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()


class Catalogue:
    """Name resolution and exact pricing over one genai-prices data snapshot."""

    def __init__(
        self,
        snapshot: DataSnapshot | None = None,
        *,
        source: str | None = None,
        snapshot_id: int | None = None,
    ):
        self._snapshot = snapshot or get_snapshot()
        self.source = source or f"genai-prices {version('genai-prices')}"
        self.snapshot_id = snapshot_id  # the stored snapshot it was loaded from, if any
        self._resolved: dict[tuple[str, str | None], CatalogueModel | None] = {}
        self._rates: dict[tuple[int, date] | tuple[int, date, int], Rate] = {}
        self._changes: dict[int, tuple[time, ...]] = {}  # by id(ModelInfo): `_price_changes`

    @property
    def data(self) -> DataSnapshot:
        """The genai-prices data behind this catalogue."""
        return self._snapshot

    @property
    def providers(self) -> list[gp.Provider]:
        return self._snapshot.providers

    def resolve(self, model_name: str, provider_hint: str | None = None) -> CatalogueModel | None:
        """The catalogue model a name refers to, or None when the catalogue does not know it."""
        cache_key = (model_name, provider_hint)
        if cache_key in self._resolved:
            return self._resolved[cache_key]
        found = None
        for candidate in candidates(model_name, provider_hint):
            try:
                provider, info = self._snapshot.find_provider_model(
                    candidate.ref, None, candidate.provider, None
                )
            except LookupError:
                continue
            found = CatalogueModel(provider.id, info.id, info, provider)
            break
        if len(self._resolved) > 100_000:
            self._resolved.clear()
        self._resolved[cache_key] = found
        return found

    def resolve_at(
        self, model_name: str, provider_hint: str | None, at: datetime
    ) -> tuple[Catalogue, CatalogueModel] | None:
        """The model and the catalogue that prices it at `at` (always this one)."""
        model = self.resolve(model_name, provider_hint)
        return None if model is None else (self, model)

    def model_price(self, model: CatalogueModel, at: datetime) -> gp.ModelPrice:
        """The price in force at `at` (genai-prices' effective-dated constraints)."""
        return self.rate(model, at).price

    def cost_nanos(self, model: CatalogueModel, tokens: TokenCounts, at: datetime) -> int:
        """The exact cost of a call in nano-USD, at the price in force at `at`."""
        return self.rate(model, at).cost_nanos(tokens)

    def rate(self, model: CatalogueModel, at: datetime) -> Rate:
        """The model's price in force at `at`, compiled once per day and model, or per stretch
        of the day with one price when the price changes with the time of day."""
        # Date-constrained prices change at most daily, time-of-day prices at the day's
        # `_price_changes`: finding the stretch is much cheaper than asking genai-prices.
        info = model.info
        changes = self._changes.get(id(info))
        if changes is None:
            changes = self._changes[id(info)] = _price_changes(info)
        cache_key: tuple[int, date] | tuple[int, date, int]
        if changes:
            utc = at.astimezone(UTC) if at.tzinfo is not None else at
            cache_key = (id(info), utc.date(), bisect_right(changes, utc.time()))
        else:
            cache_key = (id(info), at.date())
        rate = self._rates.get(cache_key)
        if rate is None:
            price = info.get_prices(at)
            rate = Rate(model.key, price, compile_price(price), timed=bool(changes))
            if len(self._rates) > 100_000:
                self._rates.clear()
            self._rates[cache_key] = rate
        return rate
