"""Smart Money Concepts detector and agent on small hand-built bar sequences.

Every expected detection below was worked out by hand from the definitions in
``sim.agents.smc`` (the comments give the reasoning); the lists are exact, so anything
detected that is not listed is a failure too.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.agents.base import AgentError, build_agent
from sim.agents.smc import (
    BOS_BULL,
    SWEEP_HIGH,
    SWEEP_LOW,
    SWING_HIGH,
    Detection,
    SmcAgent,
    SmcDetector,
    detect,
)
from sim.messages import FLAT, LONG, SHORT, Signal
from tests._agents import bars_from_rows, drive

Row = tuple[float, float, float, float]


def kinds(rows: list[Row], **kw: object) -> list[tuple[int, str, int]]:
    o, h, lo, c = zip(*rows, strict=True)
    return [(d.index, d.kind, d.ref) for d in detect(o, h, lo, c, **kw)]  # type: ignore[arg-type]


def full(rows: list[Row], **kw: object) -> list[Detection]:
    o, h, lo, c = zip(*rows, strict=True)
    return detect(o, h, lo, c, **kw)  # type: ignore[arg-type]


# -- swings -------------------------------------------------------------------------------
SWINGS: list[Row] = [  # (open, high, low, close)
    (10.0, 11.0, 9.0, 10.5),
    (10.5, 12.0, 10.0, 11.5),  # 12 > 11 before, >= 11.8 after: swing high, known at bar 2
    (11.5, 11.8, 10.8, 11.0),
    (11.0, 11.5, 9.5, 10.0),  # 9.5 < 10.8 before, <= 9.8 after: swing low, known at bar 4
    (10.0, 11.0, 9.8, 10.8),
]


def test_swings_are_confirmed_n_bars_later_and_not_before() -> None:
    assert kinds(SWINGS, swing_length=1) == [(2, "swing_high", 1), (4, "swing_low", 3)]
    d = full(SWINGS, swing_length=1)
    assert (d[0].low, d[0].high, d[1].low, d[1].high) == (12.0, 12.0, 9.5, 9.5)
    # the first bar has no bar before it: never a swing; the last bars are not confirmed yet
    assert kinds(SWINGS[:4], swing_length=1) == [(2, "swing_high", 1)]
    assert kinds(SWINGS[:2], swing_length=1) == []


def test_swing_needs_n_bars_each_side() -> None:
    # n = 2: bar 1 has one bar before it; bar 3's low 9.5 has lows 10.0, 10.8 before and
    # 9.8 after, but only one bar after it exists: nothing yet. One more bar confirms it.
    assert kinds(SWINGS, swing_length=2) == []
    more = [*SWINGS, (10.8, 11.2, 10.2, 11.0)]
    assert kinds(more, swing_length=2) == [(5, "swing_low", 3)]
    # a later, lower low invalidates the candidate before its confirmation
    lower = [*SWINGS, (10.8, 11.2, 9.4, 9.6)]
    assert kinds(lower, swing_length=2) == []


def test_equal_highs_give_one_swing_the_first() -> None:
    rows: list[Row] = [
        (9.5, 10.0, 9.0, 9.8),
        (9.8, 12.0, 9.5, 11.0),  # 12 > 10, 12 >= 12: swing (first of the plateau)
        (11.0, 12.0, 9.6, 11.5),  # 12 > 12 is false: not a swing
        (11.5, 11.0, 9.7, 10.0),
    ]
    assert kinds(rows, swing_length=1) == [(2, "swing_high", 1)]


# -- structure, order blocks, gaps, sweeps -------------------------------------------------
STRUCTURE: list[Row] = [
    (10.0, 10.5, 9.5, 10.2),
    (10.2, 11.0, 10.0, 10.8),
    (10.8, 10.9, 10.1, 10.3),  # 2: swing high at 1 (11.0)
    (10.3, 10.4, 9.6, 9.8),  # 3: bearish candle
    (9.8, 10.3, 9.7, 10.1),  # 4: swing low at 3 (9.6)
    (10.1, 11.4, 10.0, 11.3),  # 5: 11.3 > 11.0, no structure yet: BOS; OB = bar 3 [9.6, 10.4]
    (11.3, 11.6, 11.0, 11.5),  # 6: 11.0 > high of bar 4 (10.3): bullish gap [10.3, 11.0]
    (11.5, 11.55, 10.2, 10.35),  # 7: swing high at 6 (11.6); low 10.2 <= 10.4 closing above
    #                              9.6: OB retest; 10.2 <= 10.3: the gap is filled
    (10.35, 10.6, 9.3, 9.4),  # 8: 10.6 < low of bar 6 (11.0): bearish gap [10.6, 11.0];
    #                           9.4 < 9.6 against bullish structure: CHoCH; OB = bar 6
    #                           (last bullish candle since bar 3) [11.0, 11.6], with FVG
    (9.4, 9.5, 8.9, 9.0),  # 9: 9.5 < 10.2 (low of bar 7): bearish gap [9.5, 10.2]
    (9.0, 10.7, 8.95, 10.5),  # 10: swing low at 9 (8.9); 10.7 >= 10.2 fills the gap of bar 7
    (10.5, 11.2, 10.4, 10.8),  # 11: 11.2 >= 11.0: OB retest (closes 10.8 <= 11.6) and gap of
    #                            bar 6 filled; 10.4 > 9.5 (high of bar 9): bullish gap
    (10.8, 11.0, 8.5, 8.95),  # 12: swing high at 11 (11.2); 8.5 <= 9.5 fills the bull gap;
    #                           8.5 < 8.9 closing at 8.95 >= 8.9: sweep of the swing low
    (8.95, 11.5, 8.9, 11.4),  # 13: swing low at 12 (8.5); 11.4 > 11.2 against bearish
    #                           structure: CHoCH; OB = bar 12 [8.5, 11.0]
    (11.4, 11.45, 10.9, 11.1),  # 14: swing high at 13 (11.5); 10.9 <= 11.0: OB retest
]

STRUCTURE_DETECTIONS = [
    (2, "swing_high", 1),
    (4, "swing_low", 3),
    (5, "bos_bull", 1),
    (5, "ob_bull", 3),
    (6, "fvg_bull", 4),
    (7, "swing_high", 6),
    (7, "ob_bull_retest", 3),
    (7, "fvg_bull_filled", 4),
    (8, "fvg_bear", 6),
    (8, "choch_bear", 3),
    (8, "ob_bear", 6),
    (9, "fvg_bear", 7),
    (10, "swing_low", 9),
    (10, "fvg_bear_filled", 7),
    (11, "ob_bear_retest", 6),
    (11, "fvg_bear_filled", 6),
    (11, "fvg_bull", 9),
    (12, "swing_high", 11),
    (12, "fvg_bull_filled", 9),
    (12, "sweep_low", 9),
    (13, "swing_low", 12),
    (13, "choch_bull", 11),
    (13, "ob_bull", 12),
    (14, "swing_high", 13),
    (14, "ob_bull_retest", 12),
]


def test_structure_order_blocks_gaps_and_sweeps_exactly() -> None:
    assert kinds(STRUCTURE, swing_length=1) == STRUCTURE_DETECTIONS


def test_detection_levels_and_zones() -> None:
    by_key = {(d.index, d.kind): (d.low, d.high) for d in full(STRUCTURE, swing_length=1)}
    assert by_key[5, "bos_bull"] == (11.0, 11.0)  # the broken swing's level
    assert by_key[5, "ob_bull"] == (9.6, 10.4)  # bar 3's range
    assert by_key[7, "ob_bull_retest"] == (9.6, 10.4)
    assert by_key[6, "fvg_bull"] == (10.3, 11.0)  # high of bar 4 .. low of bar 6
    assert by_key[8, "fvg_bear"] == (10.6, 11.0)  # high of bar 8 .. low of bar 6
    assert by_key[8, "choch_bear"] == (9.6, 9.6)
    assert by_key[8, "ob_bear"] == (11.0, 11.6)
    assert by_key[12, "sweep_low"] == (8.9, 8.9)
    assert by_key[13, "ob_bull"] == (8.5, 11.0)


def test_each_prefix_reports_exactly_what_it_can_know() -> None:
    """Running on the first k bars gives the detections with index < k: no bar is
    revised later, and nothing is reported before its bar."""
    assert detect([], [], [], []) == []
    for k in range(1, len(STRUCTURE) + 1):
        assert kinds(STRUCTURE[:k], swing_length=1) == [
            d for d in STRUCTURE_DETECTIONS if d[0] < k
        ]


FAILURE: list[Row] = [
    (10.0, 10.5, 9.5, 10.2),
    (10.2, 11.0, 10.0, 10.8),
    (10.8, 10.9, 10.1, 10.3),  # 2: swing high at 1 (11.0)
    (10.3, 10.4, 9.0, 9.2),
    (9.2, 10.2, 9.1, 9.8),  # 4: swing low at 3 (9.0)
    (9.8, 9.85, 9.5, 9.6),  # 5: the last bearish candle
    (9.6, 11.3, 9.55, 11.2),  # 6: BOS over 11.0; OB = bar 5 [9.5, 9.85]
    (11.2, 11.25, 9.4, 9.45),  # 7: swing high at 6 (11.3); closes 9.45 < 9.5: OB broken
    (9.45, 11.4, 9.42, 11.0),  # 8: swing low at 7 (9.4); 11.4 > 11.3 closing back under it:
    #                            sweep of the swing high (against bullish structure)
    (11.0, 11.5, 9.3, 9.35),  # 9: 9.35 < 9.4 against bullish structure: CHoCH; OB = bar 8
]


def test_order_block_failure_and_buy_side_sweep() -> None:
    assert kinds(FAILURE, swing_length=1) == [
        (2, "swing_high", 1),
        (4, "swing_low", 3),
        (6, "bos_bull", 1),
        (6, "ob_bull", 5),
        (7, "swing_high", 6),
        (7, "ob_bull_broken", 5),
        (8, "swing_low", 7),
        (8, "sweep_high", 6),
        (9, "choch_bear", 7),
        (9, "ob_bear", 8),
    ]


SWEEP_WITH_TREND: list[Row] = [
    *FAILURE[:9],
    (11.0, 11.1, 9.35, 9.6),  # 9: swing high at 8 (11.4); 9.35 < 9.4 closing at 9.6: sweep
]


def test_sell_side_sweep_with_bullish_structure() -> None:
    assert kinds(SWEEP_WITH_TREND, swing_length=1)[-2:] == [
        (9, "swing_high", 8), (9, "sweep_low", 7),
    ]


def test_a_swept_swing_is_not_swept_again_and_a_broken_one_not_at_all() -> None:
    # bar 9 wicks over 11.3 again (swept at bar 8) and its 11.45 keeps bar 8 from being a
    # swing: nothing at bar 9
    rows = [*FAILURE[:9], (11.0, 11.45, 9.5, 11.1)]
    assert kinds(rows, swing_length=1) == kinds(FAILURE[:9], swing_length=1)
    det = SmcDetector(swing_length=1)
    events = [det.update(*row) for row in FAILURE[:7]]
    assert events[6] & BOS_BULL
    # 11.0 (bar 1) was broken at bar 6, and bar 6 is no swing (11.35 after it): a wick over
    # 11.0 that closes back under it is no sweep
    assert not det.update(11.2, 11.35, 10.9, 10.95) & (SWEEP_HIGH | SWEEP_LOW | SWING_HIGH)


GAPS: list[Row] = [
    (10.0, 10.2, 9.9, 10.1),
    (10.1, 10.9, 10.05, 10.8),
    (10.8, 11.2, 10.5, 11.1),  # 2: 10.5 > 10.2: bullish gap [10.2, 10.5]
    (11.1, 11.3, 11.0, 11.2),  # 3: 11.0 > 10.9: bullish gap [10.9, 11.0]
    (11.2, 11.25, 10.95, 11.0),  # 4: enters the gap of bar 1 but does not reach 10.9
    (11.0, 11.05, 10.6, 10.7),  # 5: 10.6 <= 10.9 fills it
    (10.7, 10.75, 10.2, 10.3),  # 6: 10.2 <= 10.2 fills the first; 10.75 < 10.95: bearish
    #                             gap [10.75, 10.95]
    (10.3, 10.9, 10.25, 10.8),  # 7: 10.9 < 10.95: not filled
    (10.8, 10.95, 10.7, 10.9),  # 8: 10.95 >= 10.95: filled
]


def test_fair_value_gaps_and_fills() -> None:
    # swing_length 50: no swings (hence no structure) in 9 bars
    assert kinds(GAPS, swing_length=50) == [
        (2, "fvg_bull", 0), (3, "fvg_bull", 1), (5, "fvg_bull_filled", 1),
        (6, "fvg_bull_filled", 0), (6, "fvg_bear", 4), (8, "fvg_bear_filled", 4),
    ]
    zones = [(d.low, d.high) for d in full(GAPS, swing_length=50)]
    assert zones == [(10.2, 10.5), (10.9, 11.0), (10.9, 11.0), (10.2, 10.5), (10.75, 10.95),
                     (10.75, 10.95)]


def test_min_gap_filters_narrow_gaps() -> None:
    # widths: 0.3 / 11.1 = 2.7%, 0.1 / 11.2 = 0.9%, 0.2 / 10.3 = 1.9%: only the first > 2%
    assert kinds(GAPS, swing_length=50, min_gap=0.02) == [
        (2, "fvg_bull", 0), (6, "fvg_bull_filled", 0),
    ]


def test_only_the_most_recent_open_gaps_are_followed() -> None:
    # one open gap per side: bar 3's gap pushes bar 2's out, which is never reported filled
    assert kinds(GAPS, swing_length=50, max_open_gaps=1) == [
        (2, "fvg_bull", 0), (3, "fvg_bull", 1), (5, "fvg_bull_filled", 1),
        (6, "fvg_bear", 4), (8, "fvg_bear_filled", 4),
    ]


# -- mirror symmetry (a property) ---------------------------------------------------------
MIRROR = {"high": "low", "low": "high", "bull": "bear", "bear": "bull"}


def mirrored_kind(kind: str) -> str:
    return "_".join(MIRROR.get(part, part) for part in kind.split("_"))


@st.composite
def integer_bars(draw: st.DrawFn) -> list[Row]:
    """Random walks on an integer grid (exact under mirroring), with many ties."""
    n = draw(st.integers(5, 120))
    rows = []
    price = 1_000
    for _ in range(n):
        o = price + draw(st.integers(-3, 3))
        c = o + draw(st.integers(-6, 6))
        h = max(o, c) + draw(st.integers(0, 4))
        lo = min(o, c) - draw(st.integers(0, 4))
        rows.append((float(o), float(h), float(lo), float(c)))
        price = c
    return rows


@settings(max_examples=200, deadline=None)
@given(rows=integer_bars(), n=st.integers(1, 4))
def test_mirrored_prices_mirror_every_detection(rows: list[Row], n: int) -> None:
    """Prices reflected (p -> 3000 - p; high and low swap) turn every bullish detection into
    the bearish one at the same bars, and back: the definitions treat both sides alike."""
    flipped = [(3000 - o, 3000 - lo, 3000 - h, 3000 - c) for o, h, lo, c in rows]
    got = sorted(kinds(flipped, swing_length=n))
    want = sorted((i, mirrored_kind(k), r) for i, k, r in kinds(rows, swing_length=n))
    assert got == want
    # and the agent's signals mirror: LONG <-> SHORT, same confidence
    a = drive(SmcAgent(swing_length=n), bars_from_rows(rows))
    b = drive(SmcAgent(swing_length=n), bars_from_rows(flipped))
    flip = {LONG: SHORT, SHORT: LONG, FLAT: FLAT}
    assert [None if s is None else (flip[s.side], s.confidence) for s in a] == [
        None if s is None else (s.side, s.confidence) for s in b
    ]


@settings(max_examples=100, deadline=None)
@given(rows=integer_bars(), n=st.integers(1, 4))
def test_structure_invariants(rows: list[Row], n: int) -> None:
    """Every swing is reported n bars after its bar; a break's swing was reported before it;
    a bullish and a bearish break never share a bar; order blocks sit in [swing, break)."""
    found = kinds(rows, swing_length=n)
    seen_swings: set[tuple[str, int]] = set()
    breaks_at: dict[int, set[str]] = {}
    last_break: tuple[int, int] | None = None
    for i, kind, ref in found:
        if kind.startswith("swing_"):
            assert i == ref + n
            seen_swings.add((kind, ref))
        elif kind.startswith(("bos_", "choch_")):
            side = kind.split("_")[1]
            assert (("swing_high" if side == "bull" else "swing_low"), ref) in seen_swings
            breaks_at.setdefault(i, set()).add(side)
            last_break = (i, ref)
        elif kind in ("ob_bull", "ob_bear"):
            assert last_break is not None and last_break[0] == i
            assert last_break[1] <= ref < i
    assert all(len(sides) == 1 for sides in breaks_at.values())


# -- the agent ------------------------------------------------------------------------------
def signals(rows: list[Row], n: int = 1) -> list[tuple[int, str, float, str] | None]:
    got = drive(SmcAgent(swing_length=n), bars_from_rows(rows))
    return [
        None if s is None else (i, s.side.name, s.confidence, s.reason or "")
        for i, s in enumerate(got)
    ]


def test_agent_signals_follow_the_documented_mapping() -> None:
    got = [s for s in signals(STRUCTURE) if s is not None]
    assert got == [
        (5, "LONG", 0.5, "bullish BOS"),
        (7, "LONG", 0.7, "bullish BOS + order-block retest"),
        (8, "SHORT", 0.6, "bearish CHoCH"),
        (11, "SHORT", 0.9, "bearish CHoCH + order-block retest + FVG"),
        (12, "LONG", 0.4, "sell-side liquidity sweep against bearish structure"),
        (13, "LONG", 0.6, "bullish CHoCH"),
        (14, "LONG", 0.8, "bullish CHoCH + order-block retest"),
    ]
    got = [s for s in signals(FAILURE) if s is not None]
    assert got == [
        (6, "LONG", 0.5, "bullish BOS"),
        (7, "FLAT", 0.5, "bullish order block broken"),
        (8, "SHORT", 0.4, "buy-side liquidity sweep against bullish structure"),
        (9, "SHORT", 0.6, "bearish CHoCH"),
    ]
    assert [s for s in signals(SWEEP_WITH_TREND) if s is not None][-1] == (
        9, "LONG", 0.6, "sell-side liquidity sweep with bullish structure")


def test_agent_abstains_until_a_pattern_and_repeats_nothing() -> None:
    assert signals(GAPS, n=50) == [None] * len(GAPS)  # gaps alone signal nothing
    agent = SmcAgent(swing_length=1)
    out = drive(agent, bars_from_rows(STRUCTURE))
    assert all(type(s) is Signal for s in out if s is not None)
    assert sum(s is not None for s in out) == 7


def test_agent_detector_log_matches_detect() -> None:
    agent = SmcAgent(swing_length=1)
    agent.detector.log = []
    drive(agent, bars_from_rows(STRUCTURE))
    assert agent.detector.log == full(STRUCTURE, swing_length=1)


def test_agent_parameters() -> None:
    rng = np.random.default_rng(0)
    assert isinstance(build_agent("smc", {"swing_length": 2}, rng), SmcAgent)
    with pytest.raises(AgentError, match=r"params\.swing_length"):
        build_agent("smc", {"swing_length": 0}, rng)
    with pytest.raises(AgentError, match=r"params\.min_gap"):
        build_agent("smc", {"min_gap": -0.1}, rng)
