"""What can go wrong talking to Hyperliquid, as the caller needs to tell it apart."""

from __future__ import annotations


class HyperliquidError(Exception):
    """Base class."""


class VenueRejected(HyperliquidError):
    """The venue refused the request; ``message`` is the venue's own text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransportFailed(HyperliquidError):
    """No definite answer after every retry (429s, 5xx, timeouts, dropped connections).
    ``ambiguous``: an action may have landed (an attempt was sent and its reply lost)."""

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


class SubmissionUnresolved(HyperliquidError):
    """An order was sent but whether it landed could not be established within the retry
    budget. Its ``cloid`` is the key to settle it later (``orderStatus`` by cloid); it must
    never be resubmitted under a new cloid."""

    def __init__(self, cloid: str, detail: str) -> None:
        super().__init__(f"order {cloid}: outcome unknown after retries ({detail})")
        self.cloid = cloid


class StreamUnavailable(HyperliquidError):
    """The WebSocket could not be (re)connected for the stream's ``give_up_s``."""
