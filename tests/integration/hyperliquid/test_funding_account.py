"""The venue's money in a live run (``live.reconcile``, ``live.funding``), against the fake
exchange: funding the venue charges or pays is booked once (across polls, a reconnect and
a restart) so the store's cash stays the account's; funding from before the run is not
the run's; an account value the store cannot explain is an alert, never a repair.

Expected funding amounts are computed here by hand: size x mark x rate, paid by a long
when the rate is positive, rounded to USDC's 6 decimals as the venue books them; the
mark is the fake's mid, which the test set (``quote_at``)."""

from __future__ import annotations

import asyncio
import math
from decimal import ROUND_HALF_EVEN, Decimal

from live.hyperliquid.stream import order_updates
from live.hyperliquid.venue import FundingPayment
from sim.messages import Bar
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import DEPOSIT
from .test_faults import wait_for
from .venue_session import (
    ACCOUNT,
    bars_of,
    drive,
    history,
    open_session,
    quote_at,
    scenario,
    venue_once_each,
)

QUIET = [{"name": "slow", "kind": "sma_crossover", "params": {"fast": 40, "slow": 80}}]
EPS = 1e-6


def mid_at(bar: Bar) -> Decimal:
    """The fake's mid after ``quote_at(bar)``: the open rounded down and up to 0.1."""
    bid = Decimal(repr(round(math.floor(bar.open * 10 + 1e-9) / 10, 1)))
    ask = Decimal(repr(round(math.ceil(bar.open * 10 - 1e-9) / 10, 1)))
    return (bid + ask) / 2


def funding_of(size: float, mark: Decimal, rate: str) -> float:
    """What a position of ``size`` pays (< 0) or receives at ``rate``: -size x mark x rate."""
    amount = -Decimal(repr(size)) * mark * Decimal(rate)
    return float(amount.quantize(Decimal("0.000001"), ROUND_HALF_EVEN))


def funding_rows(store: DuckDBStore, run_id: str) -> list[tuple]:
    return store.con.execute("SELECT position, rate, payment, mark FROM funding"
                             " WHERE run_id = ? ORDER BY ts", [run_id]).fetchall()


def store_cash(store: DuckDBStore, run_id: str, initial: float) -> float:
    """Cash from the stored rows alone: initial - sum(q x p + fee) + sum(funding)."""
    (traded,) = store.con.execute("SELECT coalesce(sum(quantity * price + fee), 0) FROM fills"
                                  " WHERE run_id = ?", [run_id]).fetchone()
    (funded,) = store.con.execute("SELECT coalesce(sum(payment), 0) FROM funding"
                                  " WHERE run_id = ?", [run_id]).fetchone()
    return initial - traded + funded


def alerts(store: DuckDBStore, run_id: str, kind: str) -> list[tuple]:
    return store.con.execute("SELECT store_value, venue_value, action FROM reconciliations"
                             " WHERE run_id = ? AND kind = ? ORDER BY ts",
                             [run_id, kind]).fetchall()


async def polls(fake: FakeHyperliquid, n: int) -> None:
    """Until the session has fetched the account's funding ``n`` more times."""
    seen = fake.info_kinds.get("userFunding", 0)
    await wait_for(lambda: fake.info_kinds.get("userFunding", 0) >= seen + n, 10)


def test_funding_is_booked_once_across_polls_a_reconnect_and_a_restart(
        fake: FakeHyperliquid, tmp_path) -> None:
    config = scenario(live={"reconcile_every": "1s"})
    bars = bars_of(config)[:40]
    clock = history(fake, bars, 0)
    held, paid, mids = 20, [], []

    async def first(store: DuckDBStore) -> str:
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=31)
        port, portfolio = session.port, session.runner.engine.portfolio
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0, stop_after=held)
        size = fake.position(ACCOUNT, "ETH")
        assert size != 0.0 and abs(portfolio.qty[0] - size) < 1e-9  # held: it is charged
        fake.pay_funding("ETH", 0.0001)
        paid.append(funding_of(size, mid_at(bars[held - 2]), "0.0001"))
        mids.append(mid_at(bars[held - 2]))
        await wait_for(lambda: len(port.funded) == 1, 10)
        await polls(fake, 2)  # polled twice more: the same payment again, not booked
        fake.drop_websockets()  # a reconnect: resubscribed, everything looked up again
        await wait_for(lambda: fake.subscribed(order_updates(ACCOUNT)) == 1, 10)
        await polls(fake, 2)
        assert len(port.funded) == 1
        assert abs(portfolio.cash - fake.raw_usd(ACCOUNT)) < EPS
        quote_at(fake, bars[held - 1])
        await drive(fake, session, clock, bars[:31], held)
        return (await asyncio.wait_for(task, 30)).run_id

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = asyncio.run(first(store))
        assert [r[2] for r in funding_rows(store, run_id)] == paid
        store.con.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", [run_id])

        async def second() -> float:  # the restart: the payment is fetched again
            later = history(fake, bars, 31)
            session = await open_session(fake, store, config, later, tmp_path, max_bars=3,
                                         resume=run_id)
            port, portfolio = session.port, session.runner.engine.portfolio
            assert len(port.funded) == 1  # known as booked before anything is fetched
            assert abs(portfolio.cash - fake.raw_usd(ACCOUNT)) < EPS  # restored ledger
            task = asyncio.create_task(session.run())
            await polls(fake, 1)
            size = fake.position(ACCOUNT, "ETH")
            quote_at(fake, bars[31])
            fake.pay_funding("ETH", -0.00025)  # negative: shorts pay longs
            paid.append(funding_of(size, mid_at(bars[31]), "-0.00025"))
            mids.append(mid_at(bars[31]))
            await wait_for(lambda: len(port.funded) == 2, 10)
            await polls(fake, 2)
            await drive(fake, session, later, bars[31:34], 0)
            await asyncio.wait_for(task, 30)
            return portfolio.cash

        cash = asyncio.run(second())
        rows = funding_rows(store, run_id)
        keys = store.con.execute("SELECT count(*), count(DISTINCT (coin, time_ms)) FROM"
                                 " venue_funding WHERE run_id = ?", [run_id]).fetchone()
        outside = store.con.execute("SELECT outside FROM venue_accounts WHERE run_id = ?",
                                    [run_id]).fetchall()
        stored_cash = store_cash(store, run_id, DEPOSIT)
        account_alerts = alerts(store, run_id, "account")
        venue_once_each(fake, store, run_id)
    assert [r[2] for r in rows] == paid and keys == (2, 2)
    # the venue's price for each, so a backtest's identity payment = -rate x size x mark
    # holds; it is the mid the test set, to the rounding of the amount
    assert all(abs(-rate * position * mark - payment) < EPS and abs(mark - float(mid)) < 0.01
               for (position, rate, payment, mark), mid in zip(rows, mids, strict=True))
    venue_paid = [float(f["delta"]["usdc"]) for f in fake.accounts[ACCOUNT].funding]
    assert venue_paid == paid
    # the store's cash is the account's: its ledger and its rows alone
    assert abs(cash - fake.raw_usd(ACCOUNT)) < EPS
    assert abs(stored_cash - fake.raw_usd(ACCOUNT)) < EPS
    # the account was the run's from the start and never drifted
    assert len(outside) == 1 and abs(outside[0][0]) < EPS and account_alerts == []


def test_funding_from_before_the_run_is_not_the_runs(fake: FakeHyperliquid, tmp_path) -> None:
    """The account holds ETH before the run and was charged funding an hour before it
    started: the run adopts the position (rule 4) but not that payment (it is capital
    outside the run); a payment after the start is booked. The run trades 10,000 of
    the account (``live.capital``), so what the account holds beyond is outside it."""
    config = scenario(live={"reconcile_every": "1s", "capital": DEPOSIT}, agents=QUIET)
    bars = bars_of(config)[:12]
    clock = history(fake, bars, 0)
    start_ms = clock.now_ns() // 1_000_000
    with fake.lock:  # bought 0.25 at 1990 elsewhere, before the run
        acct = fake.accounts[ACCOUNT]
        acct.positions["ETH"] = (Decimal("0.25"), Decimal("1990"))
        acct.raw_usd -= Decimal("0.25") * Decimal("1990")
    fake.pay_funding("ETH", 0.0001, time_ms=start_ms - 3_600_000)  # the book's mid: 2000
    before = funding_of(0.25, Decimal("2000"), "0.0001")
    assert before == -0.05

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars))
        port, portfolio = session.port, session.runner.engine.portfolio
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0, stop_after=5)
        assert portfolio.qty[0] == 0.25 and not port.funded
        early = FundingPayment(start_ms, "ETH", -1.0, 0.25, 0.002)  # at the start: before
        assert not port.book_funding(early)
        fake.pay_funding("ETH", -0.0002)
        await wait_for(lambda: len(port.funded) == 1, 10)
        await polls(fake, 1)
        quote_at(fake, bars[4])
        await drive(fake, session, clock, bars, 5)
        return await asyncio.wait_for(task, 30), portfolio.cash

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        (result, cash) = asyncio.run(go(store))
        rows = funding_rows(store, result.run_id)
        (outside,) = store.con.execute("SELECT outside FROM venue_accounts WHERE run_id = ?",
                                       [result.run_id]).fetchone()
        account_alerts = alerts(store, result.run_id, "account")
    after = funding_of(0.25, mid_at(bars[3]), "-0.0002")
    assert after > 0  # a long receives a negative rate
    assert [(r[0], r[1], r[2]) for r in rows] == [(0.25, -0.0002, after)]
    # the payment before the run is the account's, not the run's: the capital outside
    assert abs(outside - before) < EPS and account_alerts == []
    assert abs(cash - (fake.raw_usd(ACCOUNT) - before)) < EPS


def test_an_account_value_the_store_cannot_explain_is_alerted_not_repaired(
        fake: FakeHyperliquid, tmp_path, capsys) -> None:
    config = scenario(live={"reconcile_every": "1s"}, agents=QUIET)
    bars = bars_of(config)[:10]
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars))
        port, portfolio = session.port, session.runner.engine.portfolio
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0, stop_after=4)
        assert port.account_outside is not None and abs(port.account_outside) < EPS
        cash = portfolio.cash
        with fake.lock:  # within the tolerance (1 USD): rounding, not a difference
            fake.accounts[ACCOUNT].raw_usd -= Decimal("0.4")
        await polls(fake, 2)
        assert port.account_alerted is None
        with fake.lock:  # 25 USD left the account behind the run's back
            fake.accounts[ACCOUNT].raw_usd -= Decimal("25")
        await wait_for(lambda: port.account_alerted is not None, 10)
        await polls(fake, 3)  # it persists: alerted once
        quote_at(fake, bars[3])
        await drive(fake, session, clock, bars, 4)
        result = await asyncio.wait_for(task, 30)
        return result, cash, portfolio.cash

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result, before, after = asyncio.run(go(store))
        run_id = result.run_id
        found = alerts(store, run_id, "account")
        others = store.con.execute("SELECT count(*) FROM reconciliations WHERE run_id = ?"
                                   " AND kind <> 'account'", [run_id]).fetchone()[0]
        orders = store.con.execute("SELECT count(*) FROM orders WHERE run_id = ?",
                                   [run_id]).fetchone()[0]
        (fills,) = store.con.execute("SELECT count(*) FROM fills WHERE run_id = ?",
                                     [run_id]).fetchone()
    assert len(found) == 1, found
    store_value, venue_value, action = found[0]
    assert abs(store_value - DEPOSIT) < EPS and abs(venue_value - (DEPOSIT - 25.4)) < EPS
    assert action == "alert only: nothing repaired"
    # no repair: the store's money and rows are untouched, the venue's too
    assert after == before == DEPOSIT and orders == fills == others == 0
    assert abs(fake.raw_usd(ACCOUNT) - (DEPOSIT - 25.4)) < EPS
    assert "RECONCILIATION ALERT account" in capsys.readouterr().err
