"""The fake Ostium moved into the package (``live.ostium.fake``), where ``quorum live``
can trade it by URL (a two-venue session offline); the tests keep importing it from here."""

from live.ostium.fake.exchange import (  # noqa: F401 - re-exported for the tests
    DEFAULT_PAIRS,
    USDC,
    FakeChainTrader,
    FakeOstium,
    Faults,
)
