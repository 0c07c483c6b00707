"""Periodic jobs (price sync, budget sweep, monitors, Stripe reconciliation) and their scheduler."""
