"""SIGTERM takes the path SIGINT takes (``quorum.signals``)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from quorum.signals import run_interruptible, sigterm_as_sigint
from quorum.sweep import sigint_deferred


def test_sigterm_raises_keyboard_interrupt_in_plain_code() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_sigint():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_is_held_where_ctrl_c_is_held() -> None:
    """Inside ``sigint_deferred`` (a transaction being committed) SIGTERM waits, like
    Ctrl-C, and is raised once the block is done."""
    done = []
    with pytest.raises(KeyboardInterrupt), sigterm_as_sigint(), sigint_deferred():
        signal.raise_signal(signal.SIGTERM)
        done.append("committed")
    assert done == ["committed"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_cancels_the_session_with_its_name(signum: signal.Signals) -> None:
    seen: list[str] = []

    async def session() -> None:
        asyncio.get_running_loop().call_later(0.01, signal.raise_signal, signum)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            seen.append(str(exc))
            raise

    with pytest.raises(KeyboardInterrupt), sigterm_as_sigint():
        run_interruptible(session())
    assert seen == [f"{signum.name} received"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
