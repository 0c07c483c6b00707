"""Reports: P&L over the rollups and the decisions drawn from it."""
