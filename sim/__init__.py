"""Quorum simulation kernel: every component shared by backtest and live mode."""
