"""The parity report's float comparison (reports.parity_rows): zero against float noise is
equal, and a relative change is found at every scale of the figure (a price near 1e-7 as
near 1e5), because a figure with units gets a noise floor from its own magnitude."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.parity_rows import NOISE, REL, close, floor_of, floors, row_diff


@given(scale=st.floats(1e-8, 1e6), change=st.floats(1e-7, 0.5))
def test_a_relative_change_is_found_at_any_scale(scale: float, change: float) -> None:
    prices = [scale, scale * 1.5, scale * 0.7]
    floor = floor_of(prices)
    assert close(scale, scale, REL, floor)
    assert not close(scale, scale * (1 + change), REL, floor)
    assert row_diff({"price": scale}, {"price": scale * (1 + change)}, (), ("price",),
                    {"price": floor}) == "price"


@given(scale=st.floats(1e-8, 1e9), noise=st.floats(0.0, 1e-14))
def test_zero_against_noise_of_the_figure_is_equal(scale: float, noise: float) -> None:
    equity = [scale, 0.0, scale * 2]  # an account wiped out, then at zero plus noise
    assert close(0.0, noise * scale, REL, floor_of(equity))


def test_dimensionless_figures_keep_an_absolute_floor_and_none_matches_only_none() -> None:
    assert close(0.0, 3e-17) and not close(0.0, 1e-9)  # target exposure, confidence
    assert close(None, None) and not close(None, 0.0)
    assert floor_of([], [None]) == 0.0
    assert floors([{"q": -4.0}], [{"q": 2.0}], ("q",)) == {"q": pytest.approx(4 * NOISE)}
