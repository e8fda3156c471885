"""Scripted shocks layered on any bars, generated or recorded.

A shock is a transformation of the log price path (and volume) from one bar on, so the
bars stay valid OHLC and everything after the shock carries its lasting effect (a crash
that recovers half leaves prices lower from then on):

- ``flash_crash``: the price falls by ``drop`` (a fraction) over ``bars`` bars from bar
  ``at``, then recovers ``recovery`` of that fall (in log terms) over ``recovery_bars``;
- ``gap``: every price from bar ``at`` on is scaled by ``1 + size``, so bar ``at`` opens
  away from the close of bar ``at - 1``;
- ``liquidity_drought``: volume times ``volume_factor`` for ``bars`` bars, and each bar's
  high and low pushed out by half of ``spread_bps`` (trades print at a wider bid and ask);
- ``volatility_burst``: for ``bars`` bars the log path is stretched by ``factor`` around
  the close before the burst (every return, wick included, scaled by ``factor``).

Within a shocked bar the open moves with the previous close and the close with the shock's
path; the high and low move by the larger and smaller of the two, so they still bound the
bar. A bar that opened at the previous close still does afterwards (except at a gap).

Marking: every bar a shock touches (the fall and recovery of a flash crash, the gap bar,
the drought and burst bars, not the later bars that are merely shifted) gets ``:<kind>``
appended to its ``source_regime`` (``trend_up:flash_crash``), or the bare kind where the
bars had no regime label (recorded data); the symbol's ``source`` gets ``+<kind>@<bar>``.

``at`` is a bar index; left unset, it is drawn uniformly from the bars where the whole shock
fits in every symbol it targets (the same bar for all of them), with the ``rng`` passed in.
Bad shocks raise ``GeneratedSourceError`` naming the shock and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.data import SymbolBars
from sim.regimes.params import GeneratedSourceError, describe_validation_error

__all__ = [
    "SHOCKS",
    "FlashCrash",
    "Gap",
    "LiquidityDrought",
    "ShockConfig",
    "VolatilityBurst",
    "apply_shocks",
    "parse_shock",
]


class _Shock(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: str
    at: Annotated[int, Field(ge=0)] | None = None  # first bar; None: drawn with the rng
    symbols: Annotated[tuple[str, ...], Field(min_length=1)] | None = None  # None: all

    def span(self) -> int:
        """Bars the shock touches, counting from ``at``."""
        raise NotImplementedError

    def first_bar(self) -> int:
        """The smallest valid ``at``."""
        return 0


class FlashCrash(_Shock):
    """A fast fall and a partial rebound."""

    kind: Literal["flash_crash"] = "flash_crash"
    drop: Annotated[float, Field(gt=0, lt=1)] = 0.1  # 0.1: the price falls 10%
    bars: Annotated[int, Field(ge=1)] = 5
    recovery: Annotated[float, Field(ge=0, le=1)] = 0.5  # share of the log fall regained
    recovery_bars: Annotated[int, Field(ge=0)] = 30

    @model_validator(mode="after")
    def _recovers(self) -> FlashCrash:
        if self.recovery > 0 and self.recovery_bars == 0:
            raise ValueError("recovery_bars must be >= 1 when recovery > 0")
        return self

    def span(self) -> int:
        return self.bars + self.recovery_bars


class Gap(_Shock):
    """A jump between the close of bar ``at - 1`` and the open of bar ``at``."""

    kind: Literal["gap"] = "gap"
    size: Annotated[float, Field(gt=-1)] = -0.05  # -0.05: 5% lower from bar ``at`` on

    @model_validator(mode="after")
    def _moves(self) -> Gap:
        if self.size == 0:
            raise ValueError("size must not be 0 (a gap of nothing)")
        return self

    def span(self) -> int:
        return 1

    def first_bar(self) -> int:
        return 1


class LiquidityDrought(_Shock):
    """Little volume and wide spreads."""

    kind: Literal["liquidity_drought"] = "liquidity_drought"
    bars: Annotated[int, Field(ge=1)] = 60
    volume_factor: Annotated[float, Field(ge=0, le=1)] = 0.2
    spread_bps: Annotated[float, Field(ge=0, lt=20_000)] = 20.0  # full quoted spread

    def span(self) -> int:
        return self.bars


class VolatilityBurst(_Shock):
    """Returns scaled by ``factor`` for a while."""

    kind: Literal["volatility_burst"] = "volatility_burst"
    bars: Annotated[int, Field(ge=1)] = 30
    factor: Annotated[float, Field(gt=0)] = 3.0

    def span(self) -> int:
        return self.bars


ShockConfig = Annotated[
    FlashCrash | Gap | LiquidityDrought | VolatilityBurst, Field(discriminator="kind")
]
_MODELS: dict[str, type[_Shock]] = {
    "flash_crash": FlashCrash,
    "gap": Gap,
    "liquidity_drought": LiquidityDrought,
    "volatility_burst": VolatilityBurst,
}
SHOCKS: tuple[str, ...] = tuple(_MODELS)


def parse_shock(raw: Mapping[str, Any] | BaseModel, index: int = 0) -> _Shock:
    """One shock from a table with a ``kind``, or a shock model passed through."""
    if isinstance(raw, _Shock):
        return raw
    if not isinstance(raw, Mapping):
        raise GeneratedSourceError(
            f"shocks[{index}]: must be a table with a kind, not {type(raw).__name__}"
        )
    kind = raw.get("kind")
    if kind not in _MODELS:
        raise GeneratedSourceError(
            f"shocks[{index}].kind: {kind!r} is not one of {', '.join(SHOCKS)}"
        )
    try:
        return _MODELS[kind].model_validate(dict(raw))
    except ValidationError as exc:
        raise GeneratedSourceError(describe_validation_error(exc, f"shocks[{index}]")) from None


def _place(shock: _Shock, index: int, targets: list[SymbolBars], rng: np.random.Generator) -> int:
    name = f"shocks[{index}] ({shock.kind})"
    span, lo = shock.span(), shock.first_bar()
    shortest = min(targets, key=len)
    if shock.at is None:
        hi = len(shortest) - span  # last valid at
        if hi < lo:
            raise GeneratedSourceError(
                f"{name}: needs {span + lo} bars but {shortest.symbol!r} has {len(shortest)}"
            )
        return int(rng.integers(lo, hi + 1))
    if shock.at < lo:
        raise GeneratedSourceError(
            f"{name}.at: must be >= {lo} (a gap opens between bar at-1 and bar at)"
        )
    if shock.at + span > len(shortest):
        raise GeneratedSourceError(
            f"{name}.at: bars {shock.at}..{shock.at + span - 1} run past the "
            f"{len(shortest)} bars of {shortest.symbol!r}"
        )
    return shock.at


def _offsets(shock: FlashCrash | Gap, at: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Log offsets at the open and at the close of bars ``at..n-1``."""
    m = n - at
    if isinstance(shock, Gap):
        f = np.full(m, math.log1p(shock.size))
        return f, f
    fall = math.log1p(-shock.drop)
    end = np.full(m, fall * (1 - shock.recovery))
    steps = np.arange(1, shock.bars + 1) / shock.bars
    end[: shock.bars] = fall * steps
    r = shock.recovery_bars
    end[shock.bars : shock.bars + r] = fall * (1 - shock.recovery * np.arange(1, r + 1) / r)
    start = np.empty(m)
    start[0] = 0.0
    start[1:] = end[:-1]
    return start, end


def _shift(b: SymbolBars, shock: FlashCrash | Gap, at: int) -> dict[str, np.ndarray]:
    start, end = _offsets(shock, at, len(b))
    up, down = np.exp(np.maximum(start, end)), np.exp(np.minimum(start, end))
    cols = {c: np.array(b.column(c)) for c in ("open", "high", "low", "close")}
    cols["open"][at:] *= np.exp(start)
    cols["close"][at:] *= np.exp(end)
    cols["high"][at:] *= up
    cols["low"][at:] *= down
    return cols


def _burst(b: SymbolBars, shock: VolatilityBurst, at: int) -> dict[str, np.ndarray]:
    ref = math.log(b.close[at - 1] if at > 0 else b.open[0])
    stop = at + shock.bars
    cols = {}
    for c in ("open", "high", "low", "close"):
        x = np.array(b.column(c))
        x[at:stop] = np.exp(ref + shock.factor * (np.log(x[at:stop]) - ref))
        cols[c] = x
    shift = (shock.factor - 1) * (math.log(b.close[stop - 1]) - ref)
    for x in cols.values():
        x[stop:] *= math.exp(shift)
    return cols


def _drought(b: SymbolBars, shock: LiquidityDrought, at: int) -> dict[str, np.ndarray]:
    stop = at + shock.bars
    half = shock.spread_bps / 20_000
    cols = {c: np.array(b.column(c)) for c in ("high", "low", "volume")}
    cols["high"][at:stop] *= 1 + half
    cols["low"][at:stop] *= 1 - half
    cols["volume"][at:stop] *= shock.volume_factor
    return cols


def _apply(b: SymbolBars, shock: _Shock, at: int, index: int) -> SymbolBars:
    if isinstance(shock, FlashCrash | Gap):
        cols = _shift(b, shock, at)
    elif isinstance(shock, VolatilityBurst):
        cols = _burst(b, shock, at)
    else:
        assert isinstance(shock, LiquidityDrought)
        cols = _drought(b, shock, at)
    if "open" in cols:
        # Where a bar opened at the previous close it still does, to the bit (the two
        # were transformed by different float operations), except across a gap.
        o, c = cols["open"], cols["close"]
        same = np.zeros(len(b), dtype=bool)
        same[1:] = b.open[1:] == b.close[:-1]
        if isinstance(shock, Gap):
            same[at] = False
        o[1:] = np.where(same[1:], c[:-1], o[1:])
        cols["high"] = np.maximum(cols["high"], np.maximum(o, c))  # rounding guard
        cols["low"] = np.minimum(cols["low"], np.minimum(o, c))
        if not (np.isfinite(cols["high"]).all() and (cols["low"] > 0).all()):
            raise GeneratedSourceError(
                f"shocks[{index}] ({shock.kind}): prices on {b.symbol!r} leave the range of "
                "floating point numbers; use a smaller factor"
            )
    kind = shock.kind
    labels = (np.full(len(b), None, dtype=object) if b.source_regime is None
              else np.array(b.source_regime, dtype=object))
    span = slice(at, at + shock.span())
    labels[span] = [kind if x is None else f"{x}:{kind}" for x in labels[span]]
    cols["source_regime"] = labels
    for x in cols.values():
        x.setflags(write=False)
    return replace(b, source=f"{b.source} +{kind}@{at}", **cols)  # type: ignore[arg-type]


def apply_shocks(
    bars: Sequence[SymbolBars],
    shocks: Sequence[ShockConfig | Mapping[str, Any]],
    rng: np.random.Generator,
) -> list[SymbolBars]:
    """The bars with each shock applied in order (later shocks see earlier ones).

    ``shocks`` entries are shock models or tables with a ``kind``. ``rng`` places shocks
    whose ``at`` is unset (one draw each, in order); shocks with ``at`` use no randomness.
    The input bars are not changed.
    """
    out = list(bars)
    by_symbol = {b.symbol: i for i, b in enumerate(out)}
    for index, raw in enumerate(shocks):
        shock = parse_shock(raw, index)
        names = shock.symbols if shock.symbols is not None else tuple(by_symbol)
        for sym in names:
            if sym not in by_symbol:
                raise GeneratedSourceError(
                    f"shocks[{index}] ({shock.kind}).symbols: {sym!r} is not in the data"
                )
        at = _place(shock, index, [out[by_symbol[s]] for s in names], rng)
        for sym in names:
            out[by_symbol[sym]] = _apply(out[by_symbol[sym]], shock, at, index)
    return out
