"""Quorum simulation kernel: every component shared by backtest and live mode."""

from sim.portable_numpy import keep_numpy_portable

keep_numpy_portable()  # before anything imports numpy: the same rows on every machine
