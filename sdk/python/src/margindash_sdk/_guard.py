"""The guard that keeps SDK bugs out of the host app, and the switch tests use to see them."""

from __future__ import annotations

import logging

logger = logging.getLogger("margindash_sdk")

# Tests set this to True (see tests/conftest.py) so an SDK bug fails the test instead of hiding.
RAISE_INTERNAL_ERRORS = False


def swallow(exc: BaseException, where: str) -> None:
    """Log an internal SDK error at debug level, or re-raise it when tests asked for that."""
    if RAISE_INTERNAL_ERRORS:
        raise exc
    logger.debug("margindash: internal error in %s", where, exc_info=exc)


# Errors caught on the worker thread, kept for the test fixture when RAISE_INTERNAL_ERRORS is set.
WORKER_ERRORS: list[BaseException] = []


def record_worker_error(exc: BaseException) -> None:
    """Log an error the worker survived; keep it for tests that watch for SDK bugs."""
    if RAISE_INTERNAL_ERRORS:
        WORKER_ERRORS.append(exc)
    logger.debug("margindash: internal error in the worker", exc_info=exc)
