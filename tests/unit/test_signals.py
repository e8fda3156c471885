"""SIGTERM takes the path SIGINT takes, and the exit code says which came
(``quorum.signals``)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from quorum.signals import (
    interrupted_exit_code,
    interrupts_as_keyboard_interrupt,
    interrupts_deferred,
    received,
    run_interruptible,
)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_raises_keyboard_interrupt_in_plain_code(signum: signal.Signals,
                                                               code: int) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match=signum.name), \
            interrupts_as_keyboard_interrupt():
        signal.raise_signal(signum)
    assert signal.getsignal(signal.SIGTERM) is before
    assert received() == signum and interrupted_exit_code() == code


def test_sigterm_is_held_where_ctrl_c_is_held() -> None:
    """Inside ``interrupts_deferred`` (a store write, a sweep's commit) SIGTERM waits, like
    Ctrl-C, and is raised once the block is done."""
    done = []
    with pytest.raises(KeyboardInterrupt), interrupts_as_keyboard_interrupt(), \
            interrupts_deferred():
        signal.raise_signal(signal.SIGTERM)
        done.append("committed")
    assert done == ["committed"]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_cancels_the_session_with_its_name(signum: signal.Signals, code: int) -> None:
    seen: list[str] = []

    async def session() -> None:
        asyncio.get_running_loop().call_later(0.01, signal.raise_signal, signum)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            seen.append(str(exc))
            raise

    with pytest.raises(KeyboardInterrupt), interrupts_as_keyboard_interrupt():
        run_interruptible(session())
    assert seen == [f"{signum.name} received"]
    assert interrupted_exit_code() == code
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
