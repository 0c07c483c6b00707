"""What each dashboard page shows, built from the report services (no HTTP here)."""
