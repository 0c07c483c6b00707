"""Importing this module registers every periodic job (each feature module adds its own)."""

import margindash.budgets.jobs  # budget sweep, alert retries, monitors
import margindash.pricing.sync  # daily price sync
import margindash.stripe_sync.jobs  # noqa: F401  (Stripe event retries, daily reconciliation)
