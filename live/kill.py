"""Kill switch for a live session: a file that appears, or a signal, pulls it.

Either way the switch only *enqueues* a request; the live runner's single consumer applies
it between bars, so the pipeline stays single-threaded exactly as in a backtest. What the
request does is the scenario's own kill switch (``sim.risk``): from then on only
position-reducing orders pass, and with ``risk.flatten_on_trip`` every position is closed.

``quorum kill`` creates the file; ``kill -USR1 <pid>`` sends the signal. The signal's
handler stays installed for the whole session (``armed``), also after the switch was
pulled: a second pull, by either means, changes nothing, and never ends the process
(the signal's default action would).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SIGNAL = signal.SIGUSR1


@dataclass(frozen=True, slots=True)
class KillRequested:
    """Pulled by ``source`` ("file PATH" or "signal SIGUSR1")."""

    source: str


class KillSwitch:
    """Watch ``path`` (polled every ``poll_s`` seconds) and, while armed, a signal."""

    def __init__(self, path: str | Path | None = None, *, poll_s: float = 0.25,
                 signum: signal.Signals | None = DEFAULT_SIGNAL) -> None:
        self.path = Path(path) if path is not None else None
        self.poll_s = poll_s
        self.signum = signum
        self.pulled: KillRequested | None = None

    def check_file(self) -> KillRequested | None:
        if self.path is not None and self.path.exists():
            return KillRequested(f"file {self.path}")
        return None

    def _pull(self, queue: asyncio.Queue[object], request: KillRequested) -> None:
        if self.pulled is None:
            self.pulled = request
        queue.put_nowait(request)

    @contextmanager
    def armed(self, queue: asyncio.Queue[object]) -> Iterator[None]:
        """While inside (on the running loop's thread), every ``signum`` puts a
        ``KillRequested`` on ``queue``; on leaving, the signal's previous handler is back.
        Not the main thread, or no signals here: the file only."""
        if self.signum is None:
            yield
            return
        signum = self.signum
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signum)
        try:
            loop.add_signal_handler(
                signum, lambda: self._pull(queue, KillRequested(f"signal {signum.name}")))
        except (NotImplementedError, RuntimeError, ValueError):
            yield
            return
        try:
            yield
        finally:
            loop.remove_signal_handler(signum)
            if previous is not None:
                signal.signal(signum, previous)

    async def watch(self, queue: asyncio.Queue[object]) -> None:
        """Put one ``KillRequested`` on ``queue`` when the file appears, then stop."""
        while (found := self.check_file()) is None:
            await asyncio.sleep(self.poll_s)
        self._pull(queue, found)


def pull(path: str | Path) -> Path:
    """Pull the switch of the session watching ``path`` (what ``quorum kill`` does)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch()
    return target
