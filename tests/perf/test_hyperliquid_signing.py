"""Order preparation and signing latency (target p99 <= 150 us), under pytest-benchmark.

Disabled by default (each runs once as a smoke test). Measure with
``pytest tests/perf/test_hyperliquid_signing.py --benchmark-enable``; figures in
BENCHMARKS.md. One round = check and round an order, build its action, take a nonce, hash
(msgpack + keccak), sign (EIP-712 digest, secp256k1) and serialise the JSON body: all
that happens between a decision and the bytes handed to the socket.
"""

from __future__ import annotations

import json

from live.hyperliquid.config import Credentials, HyperliquidConfig
from live.hyperliquid.signing import Signature, Signer, recover_l1_signer
from live.hyperliquid.venue import HyperliquidVenue
from live.hyperliquid.wire import AssetInfo

KEY = "0x" + "33" * 32


def test_prepare_and_sign_order(benchmark) -> None:
    venue = HyperliquidVenue(HyperliquidConfig(network="testnet", base_url="http://127.0.0.1:9"),
                             Credentials(Signer(KEY, mainnet=False)))
    venue.assets = {"ETH": AssetInfo("ETH", 1, 4, 25)}

    def prepare_and_sign() -> bytes:
        order = venue.prepare_limit("ETH", True, 0.123456, 2001.2345, tif="Ioc")
        return venue.rest.signed_body(order.action)

    body = benchmark(prepare_and_sign)
    if benchmark.stats is not None and not benchmark.disabled:  # record p99 with the figures
        data = sorted(benchmark.stats.stats.data)
        benchmark.extra_info["p99_us"] = round(data[int(0.99 * (len(data) - 1))] * 1e6, 1)
        benchmark.extra_info["p50_us"] = round(data[len(data) // 2] * 1e6, 1)
    assert b'"signature"' in body
    sent = json.loads(body)
    assert recover_l1_signer(sent["action"], Signature.from_wire(sent["signature"]),
                             sent["nonce"], mainnet=False) == venue.credentials.signer.address
