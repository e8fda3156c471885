"""``RiskEngine.restore``: a restarted run's risk state from plain values, checked against
hand-computed days (in the risk timezone), counts, equity baselines and breakers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sim.messages import SubmitOrder
from sim.risk import RiskEngine, RiskLimits

TZ = "Etc/GMT+5"  # UTC-5, no daylight saving: the local day is [05:00, 05:00) UTC
LOCAL = timezone(timedelta(hours=-5))


def at(day: int, hour: int, minute: int = 0) -> int:
    """ns of March ``day`` 2024, ``hour``:``minute`` local (UTC-5)."""
    return int(datetime(2024, 3, day, hour, minute, tzinfo=LOCAL).timestamp()) * 10**9


def order(ts: int, qty: float = 1.0) -> SubmitOrder:
    return SubmitOrder(99, 1, ts, "X", qty, 100.0)


NOW = at(5, 10)
# Mar 4 23:00 local is Mar 5 04:00 UTC: the same UTC day as NOW, not the same local day
SENT = [at(4, 23), at(5, 1), at(5, 9, 30), at(5, 9, 59)]
EQUITY_TS = [at(4, 12), at(4, 22), at(5, 8)]
EQUITY = [10_100.0, 10_050.0, 9_900.0]


def restored(**limits) -> RiskEngine:
    risk = RiskEngine(limits=RiskLimits(timezone=TZ, **limits), initial_equity=10_000.0)
    risk.restore(NOW, sent=SENT, equity_ts=EQUITY_TS, equity=EQUITY)
    return risk


def test_orders_sent_today_count_toward_the_day_in_the_risk_timezone() -> None:
    risk = restored(max_orders_per_day=4)
    assert risk.first_breach(order(at(5, 10, 1)), 0.0) is None  # 3 today: a 4th may go
    risk.on_order_sent(order(at(5, 10, 1)))
    breach = risk.first_breach(order(at(5, 10, 2)), 0.0)
    assert breach is not None and (breach.check, breach.value) == ("max_orders_per_day", 4)
    assert risk.first_breach(order(at(6, 0, 1)), 0.0) is None  # the next local day: afresh


def test_the_order_rate_window_continues() -> None:
    risk = restored(max_orders_per_window=2, order_window_ns=3_600 * 10**9)
    breach = risk.first_breach(order(at(5, 10)), 0.0)  # 09:30 and 09:59 in the last hour
    assert breach is not None and (breach.check, breach.value) == ("order_rate", 2)
    assert risk.first_breach(order(at(5, 10, 31)), 0.0) is None  # 09:30 left the window


def test_day_start_equity_and_peak_come_from_the_equity_rows() -> None:
    risk = restored(daily_loss_limit=0.02, max_drawdown=0.05)
    assert risk.peak_equity == 10_100.0  # the stored maximum, above the initial equity
    assert risk.day_start_equity == 10_050.0  # the last row before the local day began
    # (10050 - 9840) / 10050 = 2.09% of the day's start (2.57% below the peak): the
    # daily-loss breaker trips
    breach = risk.first_breach(order(at(5, 11)), 0.0, equity=9_840.0)
    assert breach is not None and breach.check == "daily_loss_limit"
    assert risk.breaker == "daily_loss_limit"
    assert abs(risk.breaker_value - 210.0 / 10_050.0) < 1e-15
    # 9850: 1.99% below the day's start, 2.48% below the peak: nothing trips
    fresh = restored(daily_loss_limit=0.02, max_drawdown=0.05)
    assert fresh.first_breach(order(at(5, 11)), 0.0, equity=9_850.0) is None
    # the next day starts from the last booked row (9900)
    fresh.first_breach(order(at(6, 1)), 0.0, equity=9_850.0)
    assert fresh.day_start_equity == 9_900.0


def test_a_tripped_breaker_and_the_kill_switch_are_restored() -> None:
    risk = RiskEngine(limits=RiskLimits(timezone=TZ, max_drawdown=0.5), initial_equity=1.0)
    risk.restore(NOW, breaker=("max_drawdown", 0.51, None), killed=False)
    assert (risk.breaker, risk.breaker_value) == ("max_drawdown", 0.51)
    breach = risk.first_breach(order(at(5, 11)), 0.0, equity=1.0)  # recovered: still tripped
    assert breach is not None and breach.check == "circuit_breaker"
    assert risk.first_breach(order(at(5, 11), -1.0), 2.0, equity=1.0) is None  # reduces

    daily = RiskEngine(limits=RiskLimits(timezone=TZ, daily_loss_limit=0.1))
    daily.restore(NOW, breaker=("daily_loss_limit", 0.2, at(5, 0)))  # its day has ended
    assert daily.breaker is None
    daily.restore(NOW, breaker=("daily_loss_limit", 0.2, at(6, 0)))  # it lasts till midnight
    assert daily.breaker == "daily_loss_limit"
    daily.first_breach(order(at(6, 0, 1)), 0.0)
    assert daily.breaker is None

    killed = RiskEngine(limits=RiskLimits(timezone=TZ))
    killed.restore(NOW, killed=True)
    breach = killed.first_breach(order(at(5, 11)), 0.0)
    assert killed.killed and breach is not None and breach.check == "kill_switch"


def test_an_agents_trades_today_count_toward_its_max_trades_per_day() -> None:
    from sim.risk import AgentPermissions

    risk = RiskEngine(limits=RiskLimits(timezone=TZ, agents={
        "a": AgentPermissions(max_trades_per_day=2), "b": AgentPermissions(max_trades_per_day=2)}),
        initial_equity=10_000.0)
    # yesterday (local) does not count; today: "a" twice, "b" once
    risk.restore(NOW, sent=[t for t, _ in TRADES], agent_trades=TRADES)
    breach = risk.first_breach(order(at(5, 10, 1)), 0.0, agents=("a",))
    assert breach is not None and (breach.check, breach.limit, breach.value) == (
        "agent_max_trades_per_day", 2, 2)
    assert risk.first_breach(order(at(5, 10, 1)), 0.0, agents=("b",)) is None
    risk.on_order_sent(order(at(5, 10, 1)), ("b",))
    assert risk.first_breach(order(at(5, 10, 2)), 0.0, agents=("b",)) is not None
    assert risk.first_breach(order(at(6, 0, 1)), 0.0, agents=("a", "b")) is None  # next day


TRADES = [(at(4, 23), ("a", "b")), (at(5, 1), ("a",)), (at(5, 9), ("a", "b"))]
