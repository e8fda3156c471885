"""Market regimes: generated regime series and causal regime labels."""
