"""Keep numpy's transcendental functions on the code path every x86 machine shares.

numpy picks, at import, the fastest kernels the CPU has. On AVX-512 machines (numpy's
``X86_V4`` group; ``AVX512_SKX`` before numpy 2.3) its float64 ``exp``, ``log``, ``power``
and kin are vectorised approximations that differ from the other machines' results in the
last bit for a few percent of inputs (measured: 4.5% of ``np.exp`` on 1e6 normal draws).
The generated bars, and every figure after them, would then depend on the machine a run
happened on: a sweep spread over a cluster, or CI on another machine kind, would store
other rows for the same scenario and seed. Turning that group off before numpy is
imported makes the results those of the AVX2 and baseline kernels, which agree with each
other (and with the C library) on every input we measured; the cost is speed in those
functions only, which Quorum uses on whole arrays once per run.

``NPY_DISABLE_CPU_FEATURES`` is read once, when numpy is first imported, so this runs in
``sim/__init__``; a process that imported numpy before Quorum keeps numpy's choice (and
``numpy_is_portable`` says so). A value the user set is left alone.
"""

from __future__ import annotations

import os
import sys

# numpy >= 2.3 groups AVX-512 as X86_V4; older releases name the features. Names a numpy
# does not know are ignored by it.
AVX512_GROUPS = "X86_V4 AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"


def keep_numpy_portable() -> None:
    """Before numpy's first import: keep it off the AVX-512 kernels."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", AVX512_GROUPS)


def numpy_is_portable() -> bool:
    """Whether this process's numpy left the machine-specific AVX-512 kernels off."""
    try:
        from numpy.lib.introspect import opt_func_info
    except ImportError:  # numpy < 2.1 cannot tell: trust the setting
        return bool(os.environ.get("NPY_DISABLE_CPU_FEATURES"))
    kernels = opt_func_info(func_name="^(exp|log)$", signature="float64")
    current = [str(found.get("current", "")) for by_signature in kernels.values()
               for found in by_signature.values()]
    return not any("X86_V4" in c or "AVX512" in c for c in current)
