"""Budgets, their evaluation after each ingest commit, alerts and their delivery, monitors."""
