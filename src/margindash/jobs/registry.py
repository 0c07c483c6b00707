"""Importing this module registers every periodic job (each feature module adds its own)."""
