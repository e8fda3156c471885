"""Runs store the same rows on every machine: numpy is kept off its AVX-512 kernels,
whose float64 ``exp``/``log`` differ in the last bit from the other machines' (on a
machine without AVX-512 these tests hold trivially)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np

from sim.portable_numpy import numpy_is_portable

ENV = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}


def test_the_test_process_numpy_is_portable() -> None:
    assert numpy_is_portable()


def test_exp_and_log_agree_with_the_c_library() -> None:
    """The AVX2 and baseline kernels agree with libm (the AVX-512 ones do not, on ~4.5%
    of these inputs)."""
    x = np.random.default_rng(1).standard_normal(20_000) * 0.01
    assert np.array_equal(np.exp(x), np.array([math.exp(v) for v in x]))
    y = np.abs(x) + 1e-3
    assert np.array_equal(np.log(y), np.array([math.log(v) for v in y]))


def test_the_command_line_keeps_numpy_portable_with_nothing_set() -> None:
    code = ("import quorum.cli, os; from sim.portable_numpy import numpy_is_portable; "
            "print(numpy_is_portable(), os.environ['NPY_DISABLE_CPU_FEATURES'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=ENV, timeout=120, check=True)
    assert done.stdout.split()[0] == "True", done.stdout
    assert "X86_V4" in done.stdout


def test_a_value_the_user_set_is_kept() -> None:
    code = "import sim, os; print(os.environ['NPY_DISABLE_CPU_FEATURES'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**ENV, "NPY_DISABLE_CPU_FEATURES": "FOO"}, timeout=120,
                          check=True)
    assert done.stdout.strip() == "FOO"
