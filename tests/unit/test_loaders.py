"""Recorded-data loaders (sim.loaders): trades aggregated into bars against the exchange's
own bars, resampling against a hand computation and pandas, time zones, the gap policies,
the gap report, funding rates, the file source wired through the config, and bad input
(always one line naming the file and line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.config import parse_scenario
from sim.data import BAR_COLUMNS, DataError, SymbolBars, bars_from_frame, load_bars
from sim.loaders import (
    gap_report,
    load_file,
    load_funding,
    load_trades,
    resample_bars,
    trades_to_bars,
)
from sim.runner import RandomStreams, load_market_data

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
XRP_1M = DATA / "binance_XRP_ETH_1m_2019-10.csv"
XRP_TRADES = DATA / "binance_XRP_ETH_trades_2019-10.csv"
PERP_5M = DATA / "binance_XRP_USDT_perp_5m_2021-11.csv"
FUNDING = DATA / "binance_XRP_USDT_perp_funding_8h_2021-11.csv"
ADA = DATA / "binance_ADA_BTC_5m_2018-01.csv"
MINUTE = 60 * 10**9
FIVE_MIN = 5 * MINUTE
HOUR = 60 * MINUTE
HEADER = "timestamp,open,high,low,close,volume"
TRADES_HEADER = "timestamp_ms,trade_id,side,price,amount"


def one_line_error(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def ts(text: str) -> int:
    return pd.Timestamp(text).value


# -- trades -> bars vs the exchange's own 1m bars ---------------------------------------
def test_trades_aggregate_exactly_to_the_recorded_1m_bars():
    """Tolerance: none. Every column is asserted bit-for-bit equal.

    Why that is defensible (rather than "the trade file may be a sample"): the trade ids
    are contiguous (asserted below), so the file holds every trade of the window; the 1m
    file has a bar for exactly the minutes that have trades (its missing minutes are
    minutes without trades, not outages); open/high/low/close are trade prices picked, not
    computed; and every amount is a whole number of XRP, so the float64 volume sums are
    exact whatever the summation order. Had the amounts been fractional, volume would be
    compared to within float rounding (rtol 1e-12) instead; had the ids skipped, only
    bars whose minute has contiguous ids could be compared exactly.
    """
    trades = load_trades(XRP_TRADES)
    assert trades.trade_id is not None
    assert len(trades) == 12477
    assert np.all(np.diff(trades.trade_id) == 1)  # complete: no trade missing
    assert np.all(trades.amount == np.floor(trades.amount))  # whole units: exact sums

    ours = trades_to_bars(trades, "XRPETH", MINUTE, gaps="skip")
    recorded = load_bars(XRP_1M, "XRPETH", interval_ns=MINUTE, gaps="skip")
    assert len(ours) == len(recorded) == 2469
    for col in ("ts", *BAR_COLUMNS):
        np.testing.assert_array_equal(ours.column(col), recorded.column(col), err_msg=col)
    assert ours.filled is None

    # Filling the gaps gives the same result from either file, flagged the same way.
    ours_f = trades_to_bars(trades, "XRPETH", MINUTE, gaps="ffill")
    recorded_f = load_bars(XRP_1M, "XRPETH", interval_ns=MINUTE, gaps="ffill")
    for col in ("ts", *BAR_COLUMNS, "filled"):
        np.testing.assert_array_equal(ours_f.column(col), recorded_f.column(col), err_msg=col)
    assert int(ours_f.filled.sum()) == gap_report(recorded, MINUTE).missing == 1091


def test_trades_bar_definition_by_hand(tmp_path):
    base = ts("2024-01-01T00:00:00Z") // 1_000_000
    rows = [  # ms offset, price, amount
        (0, 10.0, 1.0), (15_000, 12.0, 2.0), (15_000, 9.0, 0.5), (59_999, 11.0, 1.5),
        (60_000, 11.5, 3.0),  # exactly the next minute's open: belongs to it
        (180_001, 13.0, 1.0),  # minute 3: minute 2 has no trades
    ]
    path = tmp_path / "t.csv"
    path.write_text(TRADES_HEADER + "\n" + "".join(
        f"{base + ms},{i},buy,{p},{a}\n" for i, (ms, p, a) in enumerate(rows)))
    bars = trades_to_bars(load_trades(path), "X", MINUTE, gaps="skip")
    start = ts("2024-01-01T00:00:00Z")
    np.testing.assert_array_equal(bars.ts, [start, start + MINUTE, start + 3 * MINUTE])
    np.testing.assert_array_equal(bars.open, [10.0, 11.5, 13.0])
    np.testing.assert_array_equal(bars.high, [12.0, 11.5, 13.0])
    np.testing.assert_array_equal(bars.low, [9.0, 11.5, 13.0])
    np.testing.assert_array_equal(bars.close, [11.0, 11.5, 13.0])
    np.testing.assert_array_equal(bars.volume, [5.0, 3.0, 1.0])

    # fail: names the line of the first trade after the gap (the 6th trade: line 7)
    message = one_line_error(trades_to_bars, load_trades(path), "X", MINUTE)
    assert message.startswith(f"{path} line 7: gap: "), message
    assert "no trades" in message and 'gaps = "skip"' in message

    # ffill: one flat bar at minute 2, at minute 1's close, volume 0, flagged
    filled = trades_to_bars(load_trades(path), "X", MINUTE, gaps="ffill")
    np.testing.assert_array_equal(filled.filled, [False, False, True, False])
    assert [filled.open[2], filled.high[2], filled.low[2], filled.close[2]] == [11.5] * 4
    assert filled.volume[2] == 0.0


def test_recorded_trades_fail_policy_names_the_line_after_the_first_gap():
    message = one_line_error(load_file, XRP_TRADES, "X", format="trades", interval_ns=MINUTE)
    assert message.startswith(f"{XRP_TRADES} line 17: gap: 2019-10-11 00:04:00+00:00 "
                              "follows 2019-10-11 00:02:00+00:00"), message
    lines = XRP_TRADES.read_text().splitlines()
    assert int(lines[16].split(",")[0]) // 60_000 * 60_000 == ts("2019-10-11T00:04Z") // 10**6
    assert int(lines[15].split(",")[0]) // 60_000 * 60_000 == ts("2019-10-11T00:02Z") // 10**6


# -- resampling ------------------------------------------------------------------------
# (minute, open, high, low, close, volume)
HAND = [
    (0, 10, 12, 9, 11, 1), (1, 11, 15, 10, 14, 2), (2, 14, 14, 8, 9, 3),
    (3, 9, 10, 9, 10, 4), (4, 10, 11, 10, 11, 5),
    (5, 11, 13, 11, 12, 6), (6, 12, 12, 7, 8, 7),
    (17, 8, 9, 8, 9, 8),  # the 00:10 interval has no bars; 00:15 has one
]


def write_bars(path: Path, rows: list[tuple[Any, ...]], start: str = "2024-01-01T00:00:00Z",
               ) -> Path:
    t0 = pd.Timestamp(start)
    path.write_text(HEADER + "\n" + "".join(
        f"{(t0 + pd.Timedelta(minutes=m)).strftime('%Y-%m-%dT%H:%M:%SZ')},"
        + ",".join(str(float(x)) for x in rest) + "\n"
        for m, *rest in rows))
    return path


def test_resample_matches_a_hand_computation(tmp_path):
    path = write_bars(tmp_path / "hand.csv", HAND)
    bars = load_file(path, "X", interval_ns=MINUTE, resample_ns=FIVE_MIN, gaps="skip")
    t0 = ts("2024-01-01T00:00:00Z")
    # Labelled by the open time of each 5m interval: 00:00 (5 bars), 00:05 (2), 00:15 (1).
    np.testing.assert_array_equal(bars.ts, [t0, t0 + FIVE_MIN, t0 + 3 * FIVE_MIN])
    np.testing.assert_array_equal(bars.open, [10, 11, 8])
    np.testing.assert_array_equal(bars.high, [15, 13, 9])
    np.testing.assert_array_equal(bars.low, [8, 7, 8])
    np.testing.assert_array_equal(bars.close, [11, 8, 9])
    np.testing.assert_array_equal(bars.volume, [15, 13, 8])
    assert bars.filled is None

    # ffill fills the empty 5m interval (00:10) only, flat at the 00:05 close.
    filled = load_file(path, "X", interval_ns=MINUTE, resample_ns=FIVE_MIN, gaps="ffill")
    np.testing.assert_array_equal(filled.ts, t0 + FIVE_MIN * np.arange(4))
    np.testing.assert_array_equal(filled.filled, [False, False, True, False])
    np.testing.assert_array_equal(filled.close, [11, 8, 8, 9])
    np.testing.assert_array_equal(filled.volume, [15, 13, 0, 8])

    # fail: the missing 1m bars are an error naming the line after the first gap (minute
    # 17 is data row 7, line 9), even though every 5m interval but one has bars.
    message = one_line_error(load_file, path, "X", interval_ns=MINUTE, resample_ns=FIVE_MIN)
    assert message.startswith(f"{path} line 9: gap: "), message


def _pandas_resample(path: Path, rule: str) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame.index = pd.to_datetime(frame.pop("timestamp"), utc=True)
    out = frame.resample(rule, label="left", closed="left", origin="epoch").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    return out.dropna(subset=["open"])  # intervals with no source bar are gaps, not bars


@pytest.mark.parametrize(("path", "src", "dst", "rule"), [
    (XRP_1M, MINUTE, FIVE_MIN, "5min"),  # with gaps: partial and empty intervals
    (XRP_1M, MINUTE, HOUR, "1h"),
    (PERP_5M, FIVE_MIN, HOUR, "1h"),
    (PERP_5M, FIVE_MIN, 86_400 * 10**9, "24h"),  # partial last day kept
])
def test_resample_matches_pandas(path, src, dst, rule):
    ours = resample_bars(load_bars(path, "X", interval_ns=src, gaps="skip"), dst,
                         source_interval_ns=src)
    ref = _pandas_resample(path, rule)
    np.testing.assert_array_equal(ours.ts, ref.index.as_unit("ns").asi8)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(ours.column(col), ref[col].to_numpy(), err_msg=col)
    # Volume: sums of decimal fractions may round differently (pandas sums with
    # compensation, we add in order): equal to within float rounding.
    np.testing.assert_allclose(ours.volume, ref["volume"].to_numpy(), rtol=1e-12, atol=0)
    assert np.all(ours.ts % dst == 0)


def test_resampled_and_filled_bars_pass_bar_validation():
    bars = load_file(XRP_1M, "X", interval_ns=MINUTE, resample_ns=FIVE_MIN, gaps="ffill")
    assert np.all(np.diff(bars.ts) == FIVE_MIN)
    assert 0 < bars.filled.sum() < len(bars)
    frame = pd.DataFrame({"timestamp": pd.to_datetime(bars.ts, utc=True),
                          **{c: bars.column(c) for c in BAR_COLUMNS}})
    again = bars_from_frame(frame, "X", interval_ns=FIVE_MIN)  # strict: no gaps now
    np.testing.assert_array_equal(again.close, bars.close)
    f = bars.filled
    assert np.all(bars.volume[f] == 0)
    assert np.all((bars.open[f] == bars.close[f]) & (bars.high[f] == bars.close[f])
                  & (bars.low[f] == bars.close[f]))
    prev = np.flatnonzero(f) - 1
    np.testing.assert_array_equal(bars.close[f], bars.close[prev])


def test_resample_errors_are_one_line(tmp_path):
    path = write_bars(tmp_path / "hand.csv", HAND)
    message = one_line_error(load_file, path, "X", interval_ns=2 * MINUTE,
                             resample_ns=FIVE_MIN, gaps="skip")
    assert message == f"{path}: resample 5m is not a multiple of the bar interval 2m"
    message = one_line_error(resample_bars, load_bars(path, "X"), 90 * 10**9,
                             source_interval_ns=MINUTE)
    assert "resample 1m30s" not in message and "resample 90s is not a multiple" in message
    bars = load_bars(path, "X", interval_ns=MINUTE, gaps="ffill")
    message = one_line_error(resample_bars, bars, FIVE_MIN, source_interval_ns=MINUTE)
    assert "resample before filling gaps" in message
    # 1m bars opening at hh:mm:30 straddle 5m boundaries: line 6 is the 00:04:30 bar
    shifted = write_bars(tmp_path / "shifted.csv", HAND[:5], start="2024-01-01T00:00:30Z")
    message = one_line_error(load_file, shifted, "X", interval_ns=MINUTE, resample_ns=FIVE_MIN)
    assert message.startswith(f"{shifted} line 6: the 1m bar at 2024-01-01 00:04:30+00:00 "
                              "crosses a 5m boundary"), message


# -- time zones ------------------------------------------------------------------------
def test_timestamps_without_zone_are_read_in_the_given_timezone(tmp_path):
    path = tmp_path / "ny.csv"
    path.write_text(HEADER + "\n"
                    "2024-01-15T09:30:00,1,2,1,2,1\n"  # EST: UTC-5
                    "2024-07-15T09:30:00,1,2,1,2,1\n"  # EDT: UTC-4
                    "2024-07-15T14:00:00Z,1,2,1,2,1\n"  # has a zone: taken as written
                    "2024-07-15 16:30:00+02:00,1,2,1,2,1\n")  # offset: converted (14:30Z)
    utc = load_bars(path, "X")  # default UTC: zone-less times are UTC, as before
    np.testing.assert_array_equal(utc.ts, [ts("2024-01-15T09:30:00Z"),
                                           ts("2024-07-15T09:30:00Z"),
                                           ts("2024-07-15T14:00:00Z"),
                                           ts("2024-07-15T14:30:00Z")])
    bars = load_bars(path, "X", timezone="America/New_York")
    np.testing.assert_array_equal(bars.ts, [ts("2024-01-15T14:30:00Z"),
                                            ts("2024-07-15T13:30:00Z"),
                                            ts("2024-07-15T14:00:00Z"),
                                            ts("2024-07-15T14:30:00Z")])
    kolkata = load_bars(path, "X", timezone="Asia/Kolkata")
    assert kolkata.ts[0] == ts("2024-01-15T04:00:00Z")


def test_timezone_on_parquet_datetimes(tmp_path):
    frame = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-15 09:30", "2024-01-15 09:31"]),
                          "open": 1.0, "high": 2.0, "low": 1.0, "close": 2.0, "volume": 1.0})
    path = tmp_path / "naive.parquet"
    frame.to_parquet(path)
    bars = load_bars(path, "X", timezone="America/New_York", interval_ns=MINUTE)
    assert bars.ts[0] == ts("2024-01-15T14:30:00Z")
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("Asia/Tokyo")
    frame.to_parquet(path)
    bars = load_bars(path, "X", timezone="America/New_York")  # aware: zone as stored
    assert bars.ts[0] == ts("2024-01-15T00:30:00Z")


@pytest.mark.parametrize(("stamp", "words"), [
    ("2024-03-10T02:30:00", "does not exist in America/New_York"),  # spring forward
    ("2024-11-03T01:30:00", "is ambiguous in America/New_York"),  # fall back
])
def test_daylight_saving_holes_and_repeats_are_errors(tmp_path, stamp, words):
    path = tmp_path / "dst.csv"
    path.write_text(HEADER + "\n2024-03-01T00:00:00,1,2,1,2,1\n" + f"{stamp},1,2,1,2,1\n")
    message = one_line_error(load_bars, path, "X", timezone="America/New_York")
    assert message.startswith(f"{path} line 3: timestamp '{stamp}' {words}"), message
    assert "offset" in message


def test_unknown_timezone_is_one_line(tmp_path):
    path = write_bars(tmp_path / "b.csv", HAND[:2])
    message = one_line_error(load_bars, path, "X", timezone="Mars/Olympus_Mons")
    assert message == (f"{path}: timezone 'Mars/Olympus_Mons' is not a known time zone "
                       "(use an IANA name like 'UTC' or 'America/New_York')")


# -- gap policies and the gap report ----------------------------------------------------
def test_gap_policies_on_a_small_file(tmp_path):
    path = write_bars(tmp_path / "g.csv", HAND)  # minutes 7..16 missing
    message = one_line_error(load_bars, path, "X", interval_ns=MINUTE)
    assert message.startswith(f"{path} line 9: gap: 2024-01-01 00:17:00+00:00 follows "
                              "2024-01-01 00:06:00+00:00 (expected one bar every 1m)"), message
    assert 'set gaps = "skip" or "ffill"' in message

    skipped = load_bars(path, "X", interval_ns=MINUTE, gaps="skip")
    assert len(skipped) == len(HAND) and skipped.filled is None
    report = gap_report(skipped, MINUTE)
    assert (report.bars, report.expected, report.missing, report.gaps) == (8, 18, 10, 1)
    assert report.first_missing == ts("2024-01-01T00:07Z")
    assert report.last_missing == ts("2024-01-01T00:16Z")
    assert (report.longest, report.longest_start) == (10, ts("2024-01-01T00:07Z"))
    assert "10 missing in 1 gap(s)" in str(report)

    filled = load_bars(path, "X", interval_ns=MINUTE, gaps="ffill")
    assert len(filled) == 18
    expected = np.zeros(18, dtype=bool)
    expected[7:17] = True
    np.testing.assert_array_equal(filled.filled, expected)  # exactly the inserted bars
    for col in ("ts", *BAR_COLUMNS):  # real bars untouched
        np.testing.assert_array_equal(filled.column(col)[~expected], skipped.column(col))
    assert np.all(filled.close[expected] == 8.0) and np.all(filled.volume[expected] == 0)
    assert gap_report(filled, MINUTE).missing == 10  # filled bars still count as missing
    assert gap_report(filled, MINUTE).filled == 10
    with pytest.raises(DataError, match="has filled bars"):
        resample_bars(filled, FIVE_MIN, source_interval_ns=MINUTE)


def test_off_grid_bar_is_an_error_under_every_policy(tmp_path):
    path = write_bars(tmp_path / "g.csv", [(0, 1, 2, 1, 2, 1), (1, 1, 2, 1, 2, 1)])
    text = path.read_text().replace("00:01:00Z", "00:01:30Z")
    path.write_text(text)
    for gaps in ("skip", "ffill"):
        message = one_line_error(load_bars, path, "X", interval_ns=MINUTE, gaps=gaps)
        assert message.startswith(f"{path} line 3: "), message
        assert "00:01:30+00:00 is 90s after 2024-01-01 00:00:00+00:00" in message
        assert "not a whole number of 1m bars" in message


def test_gap_report_on_the_ada_file():
    report = gap_report(load_bars(ADA, "ADABTC"), FIVE_MIN)
    assert (report.bars, report.missing, report.gaps, report.longest) == (5720, 40, 5, 33)
    assert report.expected == 5760
    assert pd.Timestamp(report.first_missing, tz="UTC").date().isoformat() == "2018-01-15"
    ffilled = load_bars(ADA, "ADABTC", interval_ns=FIVE_MIN, gaps="ffill")
    assert len(ffilled) == 5760 and int(ffilled.filled.sum()) == 40


# -- funding ---------------------------------------------------------------------------
def test_funding_file_loads_exactly():
    funding = load_funding(FUNDING)
    assert len(funding) == 91
    raw = pd.read_csv(FUNDING)
    np.testing.assert_array_equal(funding.rate, raw["funding_rate"].to_numpy())
    # exchange stamps kept to the millisecond, not rounded to the hour
    assert funding.ts[0] == ts("2021-11-18T00:00:00.017Z")
    assert np.all(np.diff(funding.ts) > 0)
    steps = np.diff(funding.ts)
    assert np.all(np.abs(steps - 8 * HOUR) < 10**9)  # every 8h, give or take the jitter
    assert not funding.ts.flags.writeable and not funding.rate.flags.writeable


@pytest.mark.parametrize(("body", "words"), [
    ("", "cannot read"),
    ("timestamp,funding_rate\n", "no funding rates"),
    ("timestamp,rate\n2021-11-18T00:00:00Z,0.0001\n", "missing column(s) 'funding_rate'"),
    ("timestamp,funding_rate\n2021-11-18T00:00:00Z,NaN\n", "line 2: funding_rate is nan"),
    ("timestamp,funding_rate\n2021-11-18T00:00:00Z,0.01%\n", "line 2: funding_rate is '0.01%'"),
    ("timestamp,funding_rate\n2021-11-18T00:00:00Z,1.5\n",
     "line 2: funding_rate 1.5 is not a fraction"),
    ("timestamp,funding_rate\nyesterday,0.0001\n", "line 2: bad timestamp 'yesterday'"),
    ("timestamp,funding_rate\n2021-11-18T08:00:00Z,0.0001\n2021-11-18T00:00:00Z,0.0001\n",
     "line 3: unsorted timestamp"),
    ("timestamp,funding_rate\n2021-11-18T08:00:00Z,0.0001\n2021-11-18T08:00:00Z,0.0001\n",
     "line 3: duplicate timestamp"),
])
def test_bad_funding_is_one_line(tmp_path, body, words):
    path = tmp_path / "funding.csv"
    path.write_text(body)
    message = one_line_error(load_funding, path)
    assert message.startswith(str(path)) and words in message, message


def test_negative_funding_is_valid(tmp_path):
    path = tmp_path / "funding.csv"
    path.write_text("timestamp,funding_rate\n2021-11-18T00:00:00Z,-0.00025\n")
    assert load_funding(path).rate[0] == -0.00025


# -- bad trade files --------------------------------------------------------------------
GOOD_TRADES = ["1570752011620,1,sell,0.5,23.0", "1570752011620,2,buy,0.6,54.0",
               "1570752017964,3,sell,0.55,8.0"]


def _trades_with(i: int, line: str | None) -> list[str]:
    rows = list(GOOD_TRADES)
    if line is None:
        rows.insert(i, "")
    else:
        rows[i] = line
    return rows


@pytest.mark.parametrize(("rows", "words"), [
    (None, "cannot read"),  # empty file
    ([], "no trades"),  # header only
    (_trades_with(1, "1570752011620,2,buy,NaN,54.0"), "line 3: price is nan"),
    (_trades_with(1, "1570752011620,2,buy,,54.0"), "line 3: price is nan"),
    (_trades_with(2, "1570752017964,3,sell,0.55,abc"), "line 4: amount is 'abc'"),
    (_trades_with(1, "1570752011620,2,buy,0.0,54.0"), "line 3: price 0.0 is not positive"),
    (_trades_with(1, "1570752011620,2,buy,0.6,-1"), "line 3: amount -1.0 is not positive"),
    (_trades_with(2, "1570752011619,3,sell,0.55,8.0"),
     "line 4: timestamp_ms 1570752011619 is earlier than the trade before"),
    (_trades_with(2, "1570752017964,2,sell,0.55,8.0"), "line 4: trade_id 2 appears twice"),
    (_trades_with(2, "1570752017964,3,short,0.55,8.0"), "line 4: side 'short'"),
    (_trades_with(2, "1570752017,3,sell,0.55,8.0"), "line 4: timestamp_ms 1570752017.0 is not"),
    (_trades_with(1, None), "line 3: blank line"),
])
def test_bad_trades_are_one_line(tmp_path, rows, words):
    path = tmp_path / "trades.csv"
    path.write_text("" if rows is None else "".join(f"{r}\n" for r in [TRADES_HEADER, *rows]))
    message = one_line_error(load_trades, path)
    assert message.startswith(str(path)) and words in message, message


def test_trades_need_an_interval_and_no_timezone():
    assert "need an interval" in one_line_error(load_file, XRP_TRADES, "X", format="trades")
    assert "timezone does not apply" in one_line_error(
        load_file, XRP_TRADES, "X", format="trades", interval_ns=MINUTE,
        timezone="Asia/Tokyo")
    assert "needs an interval" in one_line_error(load_file, XRP_1M, "X", gaps="skip")


# -- the file source, wired through the scenario config ----------------------------------
def _config(*data: dict[str, Any]) -> Any:
    return parse_scenario({
        "name": "loaders", "data": list(data),
        "agents": [{"name": "a", "kind": "sma_crossover"}],
        "venues": [{"name": "v", "symbols": [d["symbol"] for d in data]}],
    })


def test_file_sources_through_load_market_data():
    config = _config(
        {"symbol": "XRPETH", "path": str(XRP_TRADES), "format": "trades", "interval": "1m",
         "resample": "5m", "gaps": "ffill"},
        {"symbol": "XRPUSDT", "path": str(PERP_5M), "interval": "5m", "resample": "1h",
         "funding": str(FUNDING)},
    )
    data = load_market_data(config, RandomStreams.spawn(0, 2, 1).data)
    xrp_eth, perp = data.bars
    direct = load_file(XRP_1M, "XRPETH", interval_ns=MINUTE, resample_ns=FIVE_MIN,
                       gaps="ffill")
    for col in ("ts", *BAR_COLUMNS, "filled"):  # trades and bars agree after resampling too
        np.testing.assert_array_equal(xrp_eth.column(col), direct.column(col), err_msg=col)
    assert np.all(np.diff(perp.ts) == HOUR) and perp.funding is not None
    assert len(perp.funding) == 91
    table = data.bars_table()
    assert table.column("filled").to_numpy().sum() == int(xrp_eth.filled.sum()) > 0

    without = load_market_data(_config(
        {"symbol": "XRPETH", "path": str(XRP_TRADES), "format": "trades", "interval": "1m",
         "resample": "5m", "gaps": "ffill"},
        {"symbol": "XRPUSDT", "path": str(PERP_5M), "interval": "5m", "resample": "1h"},
    ), RandomStreams.spawn(0, 2, 1).data)
    assert without.content_hash() != data.content_hash()  # the run names its funding too


def test_symbol_bars_funding_defaults_to_none():
    bars = load_bars(PERP_5M, "X")
    assert isinstance(bars, SymbolBars) and bars.funding is None
