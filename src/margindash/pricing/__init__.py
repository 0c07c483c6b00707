"""Pricing: model-name normalisation, the genai-prices catalogue, org aliases and overrides."""
