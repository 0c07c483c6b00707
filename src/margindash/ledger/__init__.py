"""The ledger: usage events, revenue, and the rollups kept with them."""
