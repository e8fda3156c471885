"""Quorum's command line. ``sim`` is imported first: it keeps numpy's results the same on
every machine (``sim.portable_numpy``), which must happen before numpy's first import."""

import sim  # noqa: F401
