"""Kill switch for a live session: a file that appears, or a signal, pulls it.

Either way the switch only *enqueues* a request; the live runner's single consumer applies
it between bars, so the pipeline stays single-threaded exactly as in a backtest. What the
request does is the scenario's own kill switch (``sim.risk``): from then on only
position-reducing orders pass, and with ``risk.flatten_on_trip`` every position is closed.

``quorum kill`` creates the file; ``kill -USR1 <pid>`` sends the signal.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SIGNAL = signal.SIGUSR1


@dataclass(frozen=True, slots=True)
class KillRequested:
    """Pulled by ``source`` ("file PATH" or "signal SIGUSR1")."""

    source: str


class KillSwitch:
    """Watch ``path`` (polled every ``poll_s`` seconds) and, when installed, a signal."""

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

    async def watch(self, queue: asyncio.Queue[object]) -> None:
        """Put one ``KillRequested`` on ``queue`` when the switch is pulled, then stop."""
        loop = asyncio.get_running_loop()
        fired: asyncio.Future[KillRequested] = loop.create_future()

        def on_signal() -> None:
            if not fired.done():
                fired.set_result(KillRequested(f"signal {self.signum.name}"))  # type: ignore[union-attr]

        installed = False
        if self.signum is not None:
            try:
                loop.add_signal_handler(self.signum, on_signal)
                installed = True
            except (NotImplementedError, RuntimeError, ValueError):
                installed = False  # not the main thread, or no signals here: file only
        try:
            while not fired.done():
                found = self.check_file()
                if found is not None:
                    fired.set_result(found)
                    break
                await asyncio.wait([fired], timeout=self.poll_s)
            self.pulled = fired.result()
            queue.put_nowait(self.pulled)
        finally:
            if installed:
                loop.remove_signal_handler(self.signum)  # type: ignore[arg-type]


def pull(path: str | Path) -> Path:
    """Pull the switch of the session watching ``path`` (what ``quorum kill`` does)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch()
    return target
