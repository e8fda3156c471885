"""Parameters of the generated market regimes, and the one error type for bad input.

Each regime has a pydantic model with defaults, so ``generate("ranging", n, rng)`` works
with no parameters and a scenario's ``params`` table is checked field by field before any
bar is generated. Rates are annualised over a 365-day year (``sim.data.NS_PER_YEAR``, as
``gbm_bars``), so the same parameters mean the same market at any bar interval; the few
counts that are naturally per bar (a half-life) say so in their name's docstring.

Every problem surfaces as one ``GeneratedSourceError`` (a ``sim.data.DataError``, hence a
``ValueError``) with a one-line message naming the regime and the field, e.g.
``regime 'ranging': params.half_life: must be greater than 0``. pydantic's
``ValidationError`` never escapes this package.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.data import DataError

BASE_REGIMES: tuple[str, ...] = ("trend_up", "trend_down", "ranging", "high_volatility", "crash")
REGIMES: tuple[str, ...] = (*BASE_REGIMES, "regime_switching")
ROW_SUM_TOLERANCE = 1e-9  # a transition row may miss 1 by this much (decimal typing)


class GeneratedSourceError(DataError):
    """A generated series (regime or shock) that cannot be built; names the field."""


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StylizedParams(_Model):
    """Stylized facts laid over a regime's bars by generator version 2 (see
    ``sim.regimes.stylized``): fat tails (each bar's shocks scaled by a Student-t
    mixing variable with ``tail_nu`` degrees of freedom), volatility clustering (a
    log-volatility AR(1) with persistence ``vol_persistence`` per bar and stationary
    spread ``vol_of_vol``) and short-horizon reversal (AR(1) of bar returns with
    coefficient ``reversal``). The regime's own volatility stays the average level.

    The defaults come from calibrating the bundled ETH/BTC, LTC/BTC and ADA/BTC 5-minute
    bars (``quorum data calibrate``): ``reversal`` is the median of their fitted values
    (-0.145, -0.25, -0.08); ``tail_nu``, ``vol_persistence`` and ``vol_of_vol`` give a GBM
    regime ETH/BTC's excess kurtosis and |r| autocorrelation at lags 1 and 20 by the
    calibration acceptance test's measure (the median of three seeds of 20,000 bars):
    7.8, 0.27 and 0.18 against 7.05, 0.305 and 0.18. The per-bar values need no scaling
    with the bar interval: the pairs' 15-minute and hourly bars show the same reversal
    and clustering (lag-1 autocorrelation -0.06 to -0.26, |r| at lag 1 0.22 to 0.36)."""

    tail_nu: float = Field(default=9.0, gt=2, le=1000)
    vol_persistence: float = Field(default=0.985, ge=0, lt=1)
    vol_of_vol: float = Field(default=0.55, ge=0, le=2)
    reversal: float = Field(default=-0.15, gt=-1, lt=1)


class BarParams(_Model):
    """What every base regime shares: how volume is drawn, and (generator version 2)
    the stylized facts laid over the bars (``stylized``; unset: the defaults).

    A bar's volume is ``volume * exp(volume_sigma * N(0, 1)) * (1 + volume_activity *
    range / ref)``, where ``range = log(high / low)`` and ``ref`` is the expected range of a
    bar at 100% annual volatility. Busy (wide) bars trade more, as in real markets, and a
    volatile regime trades more than a calm one because ``ref`` is fixed, not per regime.
    """

    volume: PositiveFloat = 20.0  # median volume of a bar with no range
    volume_sigma: NonNegativeFloat = 0.5  # lognormal spread of volume around that
    volume_activity: NonNegativeFloat = 1.0  # extra volume per reference range
    stylized: StylizedParams | None = None  # generator version 2 only


class _GbmParams(BarParams):
    drift: float  # annualised arithmetic drift mu: log steps are (mu - sigma**2 / 2) dt
    volatility: NonNegativeFloat  # annualised sigma


class TrendUpParams(_GbmParams):
    """Geometric Brownian motion that rises: ``drift`` must beat the volatility drag
    ``volatility**2 / 2``, or the typical (median) path would fall."""

    drift: float = 2.0
    volatility: NonNegativeFloat = 0.6

    @model_validator(mode="after")
    def _rises(self) -> TrendUpParams:
        drag = self.volatility**2 / 2
        if self.drift <= drag:
            raise ValueError(
                f"drift {self.drift!r} must exceed volatility**2/2 = {drag:.6g} "
                "so the typical path rises"
            )
        return self


class TrendDownParams(_GbmParams):
    """Geometric Brownian motion that falls (any ``drift < 0`` does, the drag only helps)."""

    drift: Annotated[float, Field(lt=0)] = -2.0
    volatility: NonNegativeFloat = 0.7


class RangingParams(BarParams):
    """Ornstein-Uhlenbeck mean reversion of log price: ``dX = -k (X - log level) dt +
    volatility dW`` with ``k = ln 2 / half_life``, simulated exactly (no Euler error).

    ``level`` None reverts to the price where the ranging spell starts (the start price, or
    in ``regime_switching`` the price each ranging spell begins at); a number reverts to
    that absolute price. The stationary spread of log price around the level is
    ``volatility * sqrt(half_life_years / (2 ln 2))``.
    """

    level: PositiveFloat | None = None
    half_life: PositiveFloat = 60.0  # in bars: how long a deviation takes to halve
    volatility: NonNegativeFloat = 0.5  # annualised sigma of the driving noise


class HighVolatilityParams(BarParams):
    """GARCH(1,1) per-bar returns: ``h[t] = omega + alpha r[t-1]**2 + beta h[t-1]``,
    ``r[t] = sqrt(h[t]) z[t]`` plus drift. ``omega`` is set so the long-run variance is
    ``volatility**2`` per year: ``omega = volatility**2 dt (1 - alpha - beta)``. Each
    spell starts at that long-run variance."""

    volatility: PositiveFloat = 1.5  # annualised long-run (unconditional) volatility
    alpha: NonNegativeFloat = 0.1  # reaction to the last squared return
    beta: NonNegativeFloat = 0.85  # persistence of the variance
    drift: float = 0.0  # annualised arithmetic drift

    @model_validator(mode="after")
    def _stationary(self) -> HighVolatilityParams:
        if self.alpha + self.beta >= 1:
            raise ValueError(
                f"alpha + beta = {self.alpha + self.beta!r} must be < 1 "
                "(otherwise the variance has no long-run level)"
            )
        return self


class CrashParams(BarParams):
    """Merton jump diffusion: GBM (``drift``, ``volatility``) plus jumps arriving as a
    Poisson process of ``jump_intensity`` per year, each a log-price move drawn from
    N(``jump_mean``, ``jump_std``). There is no jump compensator: ``drift`` is the
    diffusion's drift and the jumps add ``jump_intensity * jump_mean`` per year on top, so
    negative jumps and a negative drift both pull the price down.

    ``shared_jumps``: with several symbols, jumps hit every symbol at the same instants (a
    market-wide crash; sizes still drawn per symbol); otherwise each symbol's jumps are
    independent.
    """

    drift: float = -0.5
    volatility: NonNegativeFloat = 0.9
    jump_intensity: NonNegativeFloat = 1000.0  # jumps per year (about 2.7 a day)
    jump_mean: float = -0.02  # mean log jump (-0.02 is about -2%)
    jump_std: NonNegativeFloat = 0.03
    shared_jumps: bool = True


class StateParams(_Model):
    """Parameters of each state of a ``regime_switching`` chain (defaults when unset)."""

    trend_up: TrendUpParams | None = None
    trend_down: TrendDownParams | None = None
    ranging: RangingParams | None = None
    high_volatility: HighVolatilityParams | None = None
    crash: CrashParams | None = None


class RegimeSwitchingParams(_Model):
    """A Markov chain over base regimes, one step per bar.

    ``transition[i][j]`` is the probability that a bar in ``states[i]`` is followed by a bar
    in ``states[j]``; rows must sum to 1 (within 1e-9). ``None`` means: stay with
    probability 0.995 (spells of about 200 bars) and otherwise move to one of the other
    states uniformly. The chain starts in ``initial`` (default: the first state). Each
    spell is a fresh run of its regime from the price where the spell starts (a GARCH spell
    starts at its long-run variance; a ranging spell reverts to its level, or to its
    starting price when ``level`` is unset).
    """

    states: tuple[str, ...] = ("trend_up", "ranging", "trend_down")
    transition: tuple[tuple[float, ...], ...] | None = None
    initial: str | None = None
    state_params: StateParams = StateParams()

    @field_validator("states")
    @classmethod
    def _states(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("needs at least one state")
        for name in v:
            if name not in BASE_REGIMES:
                raise ValueError(f"unknown state {name!r} (use {', '.join(BASE_REGIMES)})")
        dupes = sorted({s for s in v if v.count(s) > 1})
        if dupes:
            raise ValueError(f"state {dupes[0]!r} is listed twice")
        return v

    @field_validator("transition")
    @classmethod
    def _rows(cls, v: tuple[tuple[float, ...], ...] | None) -> tuple[tuple[float, ...], ...] | None:
        if v is None:
            return v
        for i, row in enumerate(v):
            for j, p in enumerate(row):
                if not 0 <= p <= 1:
                    raise ValueError(f"row {i} column {j} is {p!r}, not a probability")
            total = math.fsum(row)
            if abs(total - 1) > ROW_SUM_TOLERANCE:
                raise ValueError(f"row {i} sums to {total!r}, not 1 (within 1e-9)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RegimeSwitchingParams:
        k = len(self.states)
        if self.transition is not None:
            shape_ok = len(self.transition) == k and all(len(r) == k for r in self.transition)
            if not shape_ok:
                raise ValueError(
                    f"transition must be {k}x{k} (one row and column per state in states)"
                )
        if self.initial is not None and self.initial not in self.states:
            raise ValueError(f"initial state {self.initial!r} is not in states")
        for name in StateParams.model_fields:
            if getattr(self.state_params, name) is not None and name not in self.states:
                raise ValueError(f"state_params.{name} is set but {name!r} is not in states")
        return self

    def matrix(self) -> list[list[float]]:
        """The transition matrix, the default one filled in when none was given."""
        if self.transition is not None:
            return [list(row) for row in self.transition]
        k = len(self.states)
        if k == 1:
            return [[1.0]]
        stay, move = 0.995, 0.005 / (k - 1)
        return [[stay if i == j else move for j in range(k)] for i in range(k)]

    def params_of(self, state: str) -> BaseModel:
        """The parameters a state runs with: its ``state_params`` entry or the defaults."""
        given = getattr(self.state_params, state)
        return given if given is not None else _MODELS[state]()


_MODELS: dict[str, type[BaseModel]] = {
    "trend_up": TrendUpParams,
    "trend_down": TrendDownParams,
    "ranging": RangingParams,
    "high_volatility": HighVolatilityParams,
    "crash": CrashParams,
    "regime_switching": RegimeSwitchingParams,
}


def _check_regime(regime: str) -> None:
    if regime not in _MODELS:
        raise GeneratedSourceError(
            f"unknown regime {regime!r} (use one of {', '.join(REGIMES)})"
        )


def params_model(regime: str) -> type[BaseModel]:
    """The pydantic model of a regime's parameters (its fields and defaults)."""
    _check_regime(regime)
    return _MODELS[regime]


def describe_validation_error(error: ValidationError, prefix: str) -> str:
    """pydantic's multi-line report as one line: ``prefix.field: problem; ...``."""
    parts = []
    for err in error.errors():
        where = ".".join([prefix, *(str(x) for x in err["loc"])])
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required field is missing"
        else:
            message = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def validate_params(regime: str, params: Mapping[str, Any] | BaseModel | None = None) -> BaseModel:
    """A regime's parameters as its model: defaults for None, a dict validated, a model of
    the right type passed through. Raises ``GeneratedSourceError`` naming the field."""
    model = params_model(regime)
    if params is None:
        return model()
    if isinstance(params, BaseModel):
        if not isinstance(params, model):
            raise GeneratedSourceError(
                f"regime {regime!r}: params must be {model.__name__}, "
                f"not {type(params).__name__}"
            )
        return params
    if not isinstance(params, Mapping):
        raise GeneratedSourceError(
            f"regime {regime!r}: params must be a table of fields, not {type(params).__name__}"
        )
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        raise GeneratedSourceError(
            f"regime {regime!r}: {describe_validation_error(exc, 'params')}"
        ) from None
