"""Test-suite settings.

Under CI (``CI`` set, as ``.ci/run`` is run), hypothesis draws the same examples every time
(``derandomize``): a red CI is then reproducible, never a roll of the dice. Local runs
keep exploring new examples; a failure found there is printed with its seed.
"""

from __future__ import annotations

import os

from hypothesis import settings

import sim  # noqa: F401  (first: numpy's kernels the same on every machine, sim.portable_numpy)

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
