"""The fake Hyperliquid moved into the package (``live.hyperliquid.fake``), where
``quorum sandbox`` serves it to users; the tests keep importing it from here."""

from live.hyperliquid.fake.exchange import (  # noqa: F401 - re-exported for the tests
    DEFAULT_ASSETS,
    MAKER,
    FakeHyperliquid,
    Faults,
    Order,
)

if __name__ == "__main__":  # python -m tests.fakes.hyperliquid: the fake in its own process
    from live.hyperliquid.fake.exchange import main

    main()
