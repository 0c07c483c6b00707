"""Pricing: name normalisation, the catalogue and its history (daily sync, snapshots, audit),
and each org's aliases, custom prices and discounts."""
