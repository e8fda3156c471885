"""Market data validation: every rejection names the source, the row (CSV: the line) and
the problem; good data loads untouched; merge order; the GBM generator; Parquet."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.data import (
    BAR_COLUMNS,
    DataError,
    SymbolBars,
    bars_from_frame,
    gbm_bars,
    load_bars,
    merge,
)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
ETH = DATA / "binance_ETH_BTC_5m_2018-01.csv"
ADA = DATA / "binance_ADA_BTC_5m_2018-01.csv"
MINUTE = 60 * 10**9
FIVE_MIN = 5 * MINUTE
START = pd.Timestamp("2024-01-01T00:00:00Z")
HEADER = "timestamp,open,high,low,close,volume"


# -- helpers ---------------------------------------------------------------------------
def good_rows(n: int = 6) -> list[list[str]]:
    """n consistent 1-minute bars as CSV cells (strings), so tests can corrupt any cell."""
    rows = []
    for i in range(n):
        ts = (START + pd.Timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        o, c = 100.0 + i, 100.5 + i
        rows.append([ts, repr(o), repr(c + 1.0), repr(o - 1.0), repr(c), "10.0"])
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text(HEADER + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def good_frame(n: int = 6) -> pd.DataFrame:
    rows = good_rows(n)
    frame = pd.DataFrame(rows, columns=HEADER.split(","))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for col in BAR_COLUMNS:
        frame[col] = frame[col].astype(float)
    return frame


def set_cell(rows: list[list[str]], i: int, column: str, value: str) -> None:
    rows[i][HEADER.split(",").index(column)] = value


def assert_one_line(message: str) -> None:
    assert "\n" not in message and "\r" not in message, message


# -- CSV: each failure names file, line and problem -----------------------------------
# (description, row index to corrupt, mutation, words the message must contain)
def _nan(rows, i):
    set_cell(rows, i, "close", "NaN")


def _empty(rows, i):
    set_cell(rows, i, "high", "")


def _inf(rows, i):
    set_cell(rows, i, "low", "inf")


def _text(rows, i):
    set_cell(rows, i, "volume", "lots")


def _dup(rows, i):
    rows[i][0] = rows[i - 1][0]


def _unsorted(rows, i):
    rows[i], rows[i - 1] = rows[i - 1], rows[i]


def _zero_price(rows, i):
    set_cell(rows, i, "low", "0")


def _negative_price(rows, i):
    set_cell(rows, i, "open", "-1.5")


def _high_below_body(rows, i):
    # high between open and close: below max(open, close)
    o, c = float(rows[i][1]), float(rows[i][4])
    set_cell(rows, i, "high", repr((o + c) / 2))


def _low_above_body(rows, i):
    o, c = float(rows[i][1]), float(rows[i][4])
    set_cell(rows, i, "low", repr((o + c) / 2))


def _negative_volume(rows, i):
    set_cell(rows, i, "volume", "-3")


def _bad_timestamp(rows, i):
    rows[i][0] = "not-a-time"


CSV_FAILURES = [
    ("nan", 3, _nan, ["close", "finite"]),
    ("empty cell", 2, _empty, ["high", "finite"]),
    ("inf", 4, _inf, ["low", "finite"]),
    ("text number", 1, _text, ["volume", "lots"]),
    ("duplicate ts", 3, _dup, ["duplicate timestamp"]),
    ("unsorted", 4, _unsorted, ["sorted", "earlier"]),
    ("zero price", 2, _zero_price, ["low", "not positive"]),
    ("negative price", 5, _negative_price, ["open", "not positive"]),
    ("high < max(open, close)", 3, _high_below_body, ["high", "max(open, close)"]),
    ("low > min(open, close)", 1, _low_above_body, ["low", "min(open, close)"]),
    ("negative volume", 2, _negative_volume, ["volume", "negative"]),
    ("bad timestamp", 4, _bad_timestamp, ["timestamp", "not-a-time"]),
]


@pytest.mark.parametrize(("what", "row", "mutate", "words"), CSV_FAILURES,
                         ids=[c[0] for c in CSV_FAILURES])
def test_csv_failure_names_file_line_and_problem(tmp_path, what, row, mutate, words):
    rows = good_rows(8)
    mutate(rows, row)
    path = write_csv(tmp_path / "bars.csv", rows)
    with pytest.raises(DataError) as info:
        load_bars(path, "X", interval_ns=MINUTE)
    message = str(info.value)
    assert_one_line(message)
    assert message.startswith(f"{path} line {row + 2}:"), message
    for word in words:
        assert word in message, (what, message)


def test_first_bad_line_is_reported_not_a_later_one(tmp_path):
    rows = good_rows(10)
    set_cell(rows, 2, "close", "NaN")
    set_cell(rows, 7, "close", "NaN")
    path = write_csv(tmp_path / "two_bad.csv", rows)
    with pytest.raises(DataError, match=r"two_bad\.csv line 4: close"):
        load_bars(path, "X")


def test_sorted_check_reports_the_row_that_goes_back_in_time(tmp_path):
    rows = good_rows(6)
    rows.append(good_rows(1)[0])  # row 6 jumps back to the first timestamp
    path = write_csv(tmp_path / "back.csv", rows)
    with pytest.raises(DataError, match=r"back\.csv line 8: .*earlier.*sorted"):
        load_bars(path, "X")


def test_duplicate_is_reported_even_without_interval(tmp_path):
    rows = good_rows(5)
    rows[4][0] = rows[3][0]
    path = write_csv(tmp_path / "dup.csv", rows)
    with pytest.raises(DataError, match=r"dup\.csv line 6: duplicate timestamp"):
        load_bars(path, "X")


def test_gap_is_an_error_only_when_interval_is_declared(tmp_path):
    rows = good_rows(6)
    del rows[3]  # data row 3 (now the bar at minute 4) follows minute 2
    path = write_csv(tmp_path / "gap.csv", rows)
    assert len(load_bars(path, "X")) == 5  # no interval declared: gaps are fine
    assert len(load_bars(path, "X", interval_ns=MINUTE, gaps="skip")) == 5
    with pytest.raises(DataError) as info:
        load_bars(path, "X", interval_ns=MINUTE)
    message = str(info.value)
    assert_one_line(message)
    assert message.startswith(f"{path} line 5: gap"), message
    assert 'gaps = "skip"' in message


def test_wrong_declared_interval_is_a_gap_error(tmp_path):
    path = write_csv(tmp_path / "one_minute.csv", good_rows(4))
    with pytest.raises(DataError, match=r"line 3: gap"):
        load_bars(path, "X", interval_ns=FIVE_MIN)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ["cannot read"]),
        (HEADER + "\n", ["no rows"]),
        ("timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,1,1,1\n", ["'volume'"]),
        ("time,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,1,1,1,1\n", ["'timestamp'"]),
        (HEADER + "\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10,99\n"
         "2024-01-01T00:01:00Z,1,2,0.5,1.5,10,99,7\n", ["cannot read"]),
    ],
    ids=["empty file", "header only", "missing column", "no timestamp column", "ragged"],
)
def test_structural_problems_name_the_file(tmp_path, text, words):
    path = tmp_path / "broken.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_bars(path, "X")
    message = str(info.value)
    assert_one_line(message)
    assert message.startswith(str(path)), message
    for word in words:
        assert word in message, message


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_bars(tmp_path / "nope.csv", "X")
    other = tmp_path / "bars.txt"
    other.write_text(HEADER + "\n")
    with pytest.raises(DataError, match=r"bars\.txt: unknown format '\.txt'"):
        load_bars(other, "X")


def test_undecodable_file_is_a_data_error(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\x00\x81")
    with pytest.raises(DataError, match=r"binary\.csv: cannot read") as info:
        load_bars(path, "X")
    assert_one_line(str(info.value))


# -- DataFrame input: rows are 0-based positions ---------------------------------------
@pytest.mark.parametrize(("what", "row", "mutate", "words"), CSV_FAILURES,
                         ids=[c[0] for c in CSV_FAILURES])
def test_frame_failure_names_source_row_and_problem(what, row, mutate, words):
    rows = good_rows(8)
    mutate(rows, row)
    frame = pd.DataFrame(rows, columns=HEADER.split(","))  # strings, as read from a file
    with pytest.raises(DataError) as info:
        bars_from_frame(frame, "X", "mem", interval_ns=MINUTE)
    message = str(info.value)
    assert_one_line(message)
    assert message.startswith(f"mem row {row}:"), message
    for word in words:
        assert word in message, (what, message)


def test_frame_with_typed_columns():
    frame = good_frame(6)
    bars = bars_from_frame(frame, "X", interval_ns=MINUTE)
    assert len(bars) == 6 and bars.symbol == "X"
    assert bars.ts[0] == START.value
    assert np.all(np.diff(bars.ts) == MINUTE)

    bad = frame.copy()
    bad.loc[3, "high"] = np.nan
    with pytest.raises(DataError, match=r"^<dataframe> row 3: high"):
        bars_from_frame(bad, "X")

    bad = frame.copy()
    bad.loc[2, "timestamp"] = pd.NaT
    with pytest.raises(DataError, match=r"row 2: bad timestamp"):
        bars_from_frame(bad, "X")


def test_frame_datetime_index_and_time_zones():
    frame = good_frame(4)
    by_index = bars_from_frame(frame.set_index("timestamp"), "X")
    naive = frame.assign(timestamp=frame["timestamp"].dt.tz_localize(None))
    other_zone = frame.assign(timestamp=frame["timestamp"].dt.tz_convert("America/New_York"))
    for variant in (naive, other_zone):
        np.testing.assert_array_equal(bars_from_frame(variant, "X").ts, by_index.ts)
    assert by_index.ts[0] == START.value


def test_frame_without_timestamp_or_columns():
    frame = good_frame(3)
    with pytest.raises(DataError, match=r"mem: missing column 'timestamp'"):
        bars_from_frame(frame.drop(columns="timestamp"), "X", "mem")
    with pytest.raises(DataError, match=r"missing column\(s\) 'low', 'volume'"):
        bars_from_frame(frame.drop(columns=["low", "volume"]), "X", "mem")
    with pytest.raises(DataError, match="no rows"):
        bars_from_frame(frame.iloc[:0], "X", "mem")


def test_loaded_bars_are_read_only():
    bars = bars_from_frame(good_frame(3), "X")
    for col in ("ts", *BAR_COLUMNS):
        with pytest.raises(ValueError):
            bars.column(col)[0] = 1


# -- the repository's recorded data ----------------------------------------------------
def test_eth_file_loads_with_declared_interval():
    bars = load_bars(ETH, "ETHBTC", interval_ns=FIVE_MIN)
    assert len(bars) == 5760
    assert np.all(np.diff(bars.ts) == FIVE_MIN)  # sorted, unique, gap-free
    assert bars.ts[0] == pd.Timestamp("2018-01-10T04:55:00Z").value
    assert np.all(bars.high >= np.maximum(bars.open, bars.close))
    assert np.all(bars.low <= np.minimum(bars.open, bars.close))
    assert bars.source == str(ETH)


def test_ada_file_has_real_gaps():
    with pytest.raises(DataError) as info:
        load_bars(ADA, "ADABTC", interval_ns=FIVE_MIN)
    message = str(info.value)
    assert_one_line(message)
    match = re.match(rf"{re.escape(str(ADA))} line (\d+): gap: ", message)
    assert match, message
    # the named line really is the first bar after a gap
    lines = ADA.read_text().splitlines()
    line = int(match.group(1))
    before = pd.Timestamp(lines[line - 2].split(",")[0])
    after = pd.Timestamp(lines[line - 1].split(",")[0])
    assert after - before > pd.Timedelta(minutes=5)
    assert 'gaps = "skip"' in message

    bars = load_bars(ADA, "ADABTC", interval_ns=FIVE_MIN, gaps="skip")
    assert len(bars) == 5720
    steps = np.diff(bars.ts)
    assert np.all(steps > 0) and np.any(steps != FIVE_MIN)
    # 40 missing bars in all between first and last
    assert (bars.ts[-1] - bars.ts[0]) // FIVE_MIN + 1 - len(bars) == 40


# -- merge -----------------------------------------------------------------------------
def _bars(symbol: str, minutes: list[int]) -> SymbolBars:
    frame = good_frame(max(minutes) + 1).iloc[minutes].reset_index(drop=True)
    return bars_from_frame(frame, symbol)


def test_merge_orders_by_time_then_symbol_order():
    a = _bars("A", [0, 1, 2])
    b = _bars("B", [1, 2, 3])
    data = merge([a, b])
    walk = [(data.symbols[s], int(p)) for s, p in zip(data.order_symbol, data.order_pos,
                                                      strict=True)]
    assert walk == [("A", 0), ("A", 1), ("B", 0), ("A", 2), ("B", 1), ("B", 2)]
    assert len(data) == 6

    data = merge([b, a])  # ties now go to B first
    walk = [(data.symbols[s], int(p)) for s, p in zip(data.order_symbol, data.order_pos,
                                                      strict=True)]
    assert walk == [("A", 0), ("B", 0), ("A", 1), ("B", 1), ("A", 2), ("B", 2)]


def test_merge_walk_is_time_ordered_for_many_symbols():
    rng = np.random.default_rng(3)
    bars = [gbm_bars(f"S{i}", 50 + 7 * i, rng, start_ns=START.value + i * MINUTE // 2,
                     interval_ns=MINUTE) for i in range(4)]
    data = merge(bars)
    ts = np.array([bars[s].ts[p] for s, p in zip(data.order_symbol, data.order_pos,
                                                 strict=True)])
    assert len(data) == sum(len(b) for b in bars)
    assert np.all(np.diff(ts) >= 0)


def test_merge_rejects_duplicate_symbols_and_empty_input():
    a = _bars("A", [0, 1])
    with pytest.raises(DataError, match="symbol given twice: A"):
        merge([a, _bars("B", [0]), _bars("A", [2, 3])])
    with pytest.raises(DataError, match="at least one symbol"):
        merge([])


def test_content_hash_tracks_the_data():
    a = _bars("A", [0, 1, 2])
    assert merge([a]).content_hash() == merge([_bars("A", [0, 1, 2])]).content_hash()
    frame = good_frame(3)
    frame.loc[1, "volume"] = 11.0
    assert merge([a]).content_hash() != merge([bars_from_frame(frame, "A")]).content_hash()
    assert merge([a]).content_hash() != merge([_bars("Z", [0, 1, 2])]).content_hash()


# -- GBM generator ---------------------------------------------------------------------
def _gbm(seed: int, n: int = 100, **kw) -> SymbolBars:
    return gbm_bars("G", n, np.random.default_rng(seed), start_ns=START.value,
                    interval_ns=kw.pop("interval_ns", MINUTE), **kw)


def _same(a: SymbolBars, b: SymbolBars) -> bool:
    return all(np.array_equal(a.column(c), b.column(c)) for c in ("ts", *BAR_COLUMNS))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    n=st.integers(1, 300),
    s0=st.floats(1e-6, 1e6),
    drift=st.floats(-2.0, 2.0),
    volatility=st.floats(0.0, 2.0),
    interval_ns=st.sampled_from([MINUTE, FIVE_MIN, 3600 * 10**9, 86_400 * 10**9]),
)
def test_gbm_is_deterministic_and_ohlc_consistent(seed, n, s0, drift, volatility,
                                                  interval_ns):
    kw = dict(s0=s0, drift=drift, volatility=volatility, interval_ns=interval_ns)
    a = _gbm(seed, n, **dict(kw))
    b = _gbm(seed, n, **dict(kw))
    assert _same(a, b)
    assert len(a) == n
    assert a.open[0] == s0
    np.testing.assert_array_equal(a.open[1:], a.close[:-1])
    assert np.all(a.high >= np.maximum(a.open, a.close))
    assert np.all(a.low <= np.minimum(a.open, a.close))
    assert np.all(a.low > 0) and np.all(np.isfinite(a.high))
    assert np.all(a.volume >= 0)
    assert np.all(np.diff(a.ts) == interval_ns)
    # the generator's output passes the same validation recorded data must pass
    frame = pd.DataFrame({"timestamp": pd.to_datetime(a.ts, utc=True),
                          **{c: a.column(c) for c in BAR_COLUMNS}})
    assert _same(bars_from_frame(frame, "G", interval_ns=interval_ns), a)


def test_gbm_seed_changes_the_path():
    assert not np.array_equal(_gbm(1).close, _gbm(2).close)
    assert _same(_gbm(5), _gbm(5))


def test_gbm_needs_a_bar():
    with pytest.raises(DataError, match="at least one bar"):
        _gbm(0, n=0)


# -- Parquet ---------------------------------------------------------------------------
def test_parquet_round_trip(tmp_path):
    frame = good_frame(20)
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    loaded = load_bars(path, "X", interval_ns=MINUTE)
    assert _same(loaded, bars_from_frame(frame, "X"))
    assert loaded.source == str(path)


def test_recorded_csv_and_its_parquet_copy_hash_the_same(tmp_path):
    path = tmp_path / "eth.parquet"
    pd.read_csv(ETH, dtype={"timestamp": str}).to_parquet(path)
    from_csv = load_bars(ETH, "ETHBTC", interval_ns=FIVE_MIN)
    from_parquet = load_bars(path, "ETHBTC", interval_ns=FIVE_MIN)
    assert merge([from_csv]).content_hash() == merge([from_parquet]).content_hash()


def test_parquet_failure_names_file_and_row(tmp_path):
    frame = good_frame(6)
    frame.loc[4, "close"] = np.nan
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))} row 4: close"):
        load_bars(path, "X")


# -- regressions: each was a bug found by these tests ---------------------------------
def test_corrupt_parquet_is_a_data_error(tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_text("this is not parquet")
    with pytest.raises(DataError, match=r"corrupt\.parquet"):
        load_bars(path, "X")


def test_blank_line_is_rejected_by_its_physical_line(tmp_path):
    # pandas would skip it and shift every later line number; we name it instead
    rows = good_rows(4)
    path = tmp_path / "blank.csv"
    lines = [HEADER, ",".join(rows[0]), "", *(",".join(r) for r in rows[1:])]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"blank\.csv line 3: blank line"):
        load_bars(path, "X")


def test_line_numbers_stay_physical_after_a_bad_row(tmp_path):
    rows = good_rows(4)
    set_cell(rows, 3, "volume", "-1")
    path = write_csv(tmp_path / "late.csv", rows)
    with pytest.raises(DataError, match=r"late\.csv line 5: volume"):
        load_bars(path, "X")


def test_messages_show_plain_numbers(tmp_path):
    rows = good_rows(4)
    set_cell(rows, 2, "close", "NaN")
    path = write_csv(tmp_path / "nan.csv", rows)
    with pytest.raises(DataError) as info:
        load_bars(path, "X")
    assert "np.float64" not in str(info.value), str(info.value)
