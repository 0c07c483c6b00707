"""Launch acceptance: `margindash verify` (the checklist against a live server) and
`margindash reconcile` (a local cost estimate against margindash's numbers, the ±5% gate)."""
