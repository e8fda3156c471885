"""Walk-forward logistic regression: P(next bar up) from features of past bars only.

Features at bar t are computed from closes up to t (log price x = log(close)):

* ``x_t - x_{t-k}`` for each lag k in ``lags`` (log returns over several horizons);
* the rolling volatility: population standard deviation of the last ``vol_window`` one-bar
  log returns;
* the z-score of x_t against the last ``z_window`` log prices (population deviation; 0 on a
  flat window).

The label of the row at bar s is the sign of the next one-bar return, ``x_{s+1} - x_s``: 1
if up, 0 if down. A zero return has no direction and is left out of the fit. That label is
known only at bar s+1, so at bar t the training set holds rows s <= t-1 with labels from
bars <= t. Every ``retrain_every`` bars the model is refitted on the last ``train_window``
such rows. Between refits the per-bar work is O(1): the features are kept incrementally
(ring buffers, running sums recomputed exactly once per ring turn) and the prediction is
one dot product.

The built-in model is an L2-regularised logistic regression fitted by Newton's method
(IRLS) with a backtracking line search, from zero, on standardised features. Each fit is a
pure function of its training window, so a run is deterministic. ``estimator = "module:Class"``
swaps in any scikit-learn-compatible classifier (``fit``, ``predict_proba``); it is fitted on
the raw features and asked ``predict_proba`` on every bar, which is far slower.

The output: with p = P(up), LONG when p > 0.5 + ``threshold``, SHORT (FLAT if
``long_only``) when p < 0.5 - ``threshold``, otherwise HOLD (no edge: an abstention).
Confidence is |2p - 1|, in ``confidence_step`` increments.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections import deque
from operator import mul
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from sim.agents.base import AgentParams
from sim.messages import FLAT, HOLD, LONG, SHORT, Signal
from sim.view import MarketView

_fsum = math.fsum
_log = math.log
_sqrt = math.sqrt
_tanh = math.tanh


class MlLogisticParams(AgentParams):
    lags: tuple[int, ...] = Field((1, 2, 5, 10), min_length=1,
                                  description="bars in each log-return feature")
    vol_window: int = Field(20, ge=2, description="one-bar returns in the volatility feature")
    z_window: int = Field(20, ge=2, description="log prices in the z-score feature")
    train_window: int = Field(500, ge=20, description="labelled bars the model is fitted on")
    min_train: int = Field(100, ge=10, description="labelled bars needed before the first fit")
    retrain_every: int = Field(50, ge=1, description="bars between fits")
    l2: float = Field(0.01, gt=0, description="L2 penalty on standardised coefficients")
    iterations: int = Field(25, ge=1, le=500, description="most Newton steps per fit")
    threshold: float = Field(0.02, ge=0, lt=0.5, description="|p - 0.5| under which to HOLD")
    confidence_step: float = Field(0.1, gt=0, le=1, description="confidence resolution")
    long_only: bool = Field(False, description="FLAT instead of SHORT when p is low")
    estimator: str | None = Field(None, pattern=r"^[\w.]+:\w+$",
                                  description="scikit-learn-compatible 'module:Class' to use")
    estimator_params: dict[str, Any] = Field({},
                                             description="keyword arguments for estimator")

    @field_validator("lags")
    @classmethod
    def _lags(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(k < 1 for k in v) or len(set(v)) != len(v):
            raise ValueError(f"lags must be distinct positive integers, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> MlLogisticParams:
        if self.min_train > self.train_window:
            raise ValueError(
                f"min_train ({self.min_train}) must not exceed train_window ({self.train_window})"
            )
        if self.estimator is None and self.estimator_params:
            raise ValueError("estimator_params given without an estimator")
        return self


# -- the model ---------------------------------------------------------------------------
def _sigmoid(eta: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * eta))  # exact-enough and never overflows


def fit_logistic(
    X: np.ndarray, y: np.ndarray, l2: float, iterations: int = 25, tol: float = 1e-10,
) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression; returns (coef, intercept) on the raw scale.

    Minimises ``mean(log(1 + exp(eta)) - y * eta) + l2 / 2 * |w|^2`` with
    ``eta = b + Z @ w`` and Z the columns of X standardised by their mean and population
    standard deviation (a constant column stays 0, so its coefficient is 0); the intercept
    is not penalised. This equals scikit-learn's ``LogisticRegression(C=1 / (n * l2))`` on Z.
    Newton steps from zero with a backtracking line search, at most ``iterations`` of them,
    stopping once no coefficient moves by more than ``tol``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd <= 1e-300] = 1.0
    A = np.empty((n, d + 1))
    A[:, 0] = 1.0
    A[:, 1:] = (X - mean) / sd
    pen = np.full(d + 1, l2)
    pen[0] = 0.0
    beta = np.zeros(d + 1)

    def objective(b: np.ndarray) -> float:
        eta = A @ b
        return float(np.mean(np.logaddexp(0.0, eta) - y * eta) + 0.5 * np.dot(pen * b, b))

    f = objective(beta)
    for _ in range(iterations):
        p = _sigmoid(A @ beta)
        grad = A.T @ (p - y) / n + pen * beta
        hess = (A.T * (p * (1.0 - p))) @ A / n + np.diag(pen)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        t, slope = 1.0, float(grad @ step)
        while True:
            trial = beta - t * step
            f_trial = objective(trial)
            if f_trial <= f - 1e-4 * t * slope or t < 1e-10:
                break
            t *= 0.5
        beta, f = trial, f_trial
        if float(np.max(np.abs(t * step))) <= tol:
            break
    coef = beta[1:] / sd
    return coef, float(beta[0] - coef @ mean)


def _load_estimator(target: str) -> type:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"estimator {target!r}: cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, attr, None)
    if cls is None or not all(callable(getattr(cls, m, None)) for m in ("fit", "predict_proba")):
        raise ValueError(f"estimator {target!r}: not a class with fit() and predict_proba()")
    return cls


# -- the agent ---------------------------------------------------------------------------
class MlLogistic:
    """Walk-forward classifier of the next bar's direction (see the module docstring).

    Abstains until the first fit. After that it signals on every change of side or of
    quantised confidence, from cached Signal objects.
    """

    Params = MlLogisticParams
    __slots__ = (
        "_cache", "_coef", "_down", "_est", "_est_cls", "_est_kwargs", "_est_up", "_hold",
        "_i", "_j", "_lags", "_last", "_logit_hi", "_logit_lo", "_min_train", "_n", "_pending",
        "_ready_at", "_retrain_every", "_ring_r", "_ring_x", "_rx", "_since", "_sr", "_sr2",
        "_steps", "_sx", "_sx2", "_train", "_vw", "_zw", "fits", "fitted_at", "intercept",
        "iterations", "l2",
    )

    def __init__(
        self,
        lags: tuple[int, ...] | list[int] = (1, 2, 5, 10),
        vol_window: int = 20,
        z_window: int = 20,
        train_window: int = 500,
        min_train: int = 100,
        retrain_every: int = 50,
        l2: float = 0.01,
        iterations: int = 25,
        threshold: float = 0.02,
        confidence_step: float = 0.1,
        long_only: bool = False,
        estimator: str | None = None,
        estimator_params: dict[str, Any] | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        lags = tuple(int(k) for k in lags)
        if not lags or min(lags) < 1 or vol_window < 2 or z_window < 2:
            raise ValueError("need lags >= 1, vol_window >= 2 and z_window >= 2")
        if not 1 <= min_train <= train_window or retrain_every < 1 or l2 <= 0:
            raise ValueError("need 1 <= min_train <= train_window, retrain_every >= 1, l2 > 0")
        if not 0 <= threshold < 0.5 or not 0 < confidence_step <= 1:
            raise ValueError("need 0 <= threshold < 0.5 and 0 < confidence_step <= 1")
        self._lags = lags
        self._vw = vol_window
        self._zw = z_window
        self._rx = max(max(lags), z_window) + 1  # log prices kept
        self._ring_x = [0.0] * self._rx
        self._ring_r = [0.0] * vol_window
        self._i = -1  # slot of the newest log price
        self._j = 0  # slot the next return goes to
        self._n = 0
        self._sx = self._sx2 = self._sr = self._sr2 = 0.0
        self._ready_at = max(max(lags) + 1, vol_window + 1, z_window)  # bars for a full row
        self._pending: list[float] | None = None  # the last row, waiting for its label
        self._train: deque[tuple[list[float], float]] = deque(maxlen=train_window)
        self._min_train = min_train
        self._retrain_every = retrain_every
        self._since = retrain_every  # fit as soon as min_train rows are there
        self.l2 = l2
        self.iterations = iterations
        self.fits = 0
        self.fitted_at = 0  # bar number (view.n) of the last fit
        self._coef: list[float] | None = None  # raw-scale coefficients of the built-in model
        self.intercept = 0.0
        # p > 0.5 + threshold  <=>  logit > log((0.5 + threshold) / (0.5 - threshold))
        self._logit_hi = math.log((0.5 + threshold) / (0.5 - threshold))
        self._logit_lo = -self._logit_hi
        steps = round(1 / confidence_step)
        self._steps = steps
        self._down = FLAT if long_only else SHORT
        self._cache = {
            (side, k): Signal(side, min(1.0, k / steps),
                              reason=f"ML: P(up) {'above' if side is LONG else 'below'} 0.5")
            for side in (LONG, self._down) for k in range(1, steps + 1)
        }
        self._hold = Signal(HOLD, 0.0, reason="ML: no edge")
        self._last: Signal | None = None
        self._est = None
        self._est_up = 1
        self._est_cls: type | None = None
        self._est_kwargs: dict[str, Any] = {}
        if estimator is not None:
            self._est_cls = _load_estimator(estimator)
            kwargs = dict(estimator_params or {})
            try:
                takes_seed = "random_state" in inspect.signature(self._est_cls).parameters
            except (TypeError, ValueError):
                takes_seed = False
            if takes_seed and "random_state" not in kwargs and rng is not None:
                kwargs["random_state"] = int(rng.integers(2**31 - 1))
            self._est_kwargs = kwargs
        elif estimator_params:
            raise ValueError("estimator_params given without an estimator")

    @property
    def coef(self) -> tuple[float, ...] | None:
        """The built-in model's coefficients on the raw features (None before a fit)."""
        return None if self._coef is None else tuple(self._coef)

    @property
    def training_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(features, labels) the next fit would use; label NaN = zero return (left out)."""
        rows = list(self._train)
        X = np.array([r for r, _ in rows], dtype=np.float64).reshape(len(rows),
                                                                     len(self._lags) + 2)
        return X, np.array([y for _, y in rows], dtype=np.float64)

    def on_bar(self, view: MarketView) -> Signal | None:
        x = _log(view.close)
        ring = self._ring_x
        i = self._i + 1
        if i == self._rx:
            i = 0
        self._i = i
        zw = self._zw
        old = ring[i - zw]  # x_{t - z_window}: 0.0 while warming up
        prev = ring[i - 1]  # x_{t-1}
        ring[i] = x
        self._sx += x - old
        self._sx2 += x * x - old * old
        if i == self._rx - 1:  # once per ring turn: exact sums, no drift
            tail = ring[-zw:]
            self._sx = _fsum(tail)
            self._sx2 = _fsum([v * v for v in tail])
        n = self._n = self._n + 1
        if n == 1:
            return None
        r = x - prev
        rr = self._ring_r
        j = self._j
        gone = rr[j]
        rr[j] = r
        self._sr += r - gone
        self._sr2 += r * r - gone * gone
        j += 1
        if j == self._vw:
            j = 0
            self._sr = _fsum(rr)
            self._sr2 = _fsum([v * v for v in rr])
        self._j = j
        if n < self._ready_at:
            return None

        # The previous row's label is this bar's return: only now is it known.
        pending = self._pending
        if pending is not None:
            self._train.append((pending, 1.0 if r > 0.0 else 0.0 if r < 0.0 else math.nan))
            since = self._since + 1
            if (since >= self._retrain_every and len(self._train) >= self._min_train
                    and self._fit()):
                since = 0
                self.fitted_at = n
            self._since = since

        vw = self._vw
        mr = self._sr / vw
        var_r = self._sr2 / vw - mr * mr
        mx = self._sx / zw
        var_x = self._sx2 / zw - mx * mx
        row = [x - ring[i - k] for k in self._lags]
        row.append(_sqrt(var_r) if var_r > 0.0 else 0.0)
        row.append(0.0 if var_x <= 1e-24 * mx * mx else (x - mx) / _sqrt(var_x))
        self._pending = row

        coef = self._coef
        if coef is not None:
            eta = self.intercept + sum(map(mul, coef, row))
        elif self._est is not None:
            p = float(self._est.predict_proba(np.array([row]))[0, self._est_up])
            eta = math.inf if p >= 1.0 else -math.inf if p <= 0.0 else _log(p / (1.0 - p))
        else:
            return None
        if eta > self._logit_hi:
            side = LONG
        elif eta < self._logit_lo:
            side = self._down
        else:
            signal = self._hold
            if signal is self._last:
                return None
            self._last = signal
            return signal
        steps = self._steps
        k = int(_tanh(0.5 * (eta if eta > 0.0 else -eta)) * steps + 0.5)  # |2p - 1| in steps
        signal = self._cache[side, steps if k > steps else (k or 1)]
        if signal is self._last:
            return None
        self._last = signal
        return signal

    def _fit(self) -> bool:
        """Refit on the training window; False (model kept) if it lacks both classes."""
        X, y = self.training_rows
        known = ~np.isnan(y)
        X, y = X[known], y[known]
        if len(y) < 2 or y.min() == y.max():
            return False
        if self._est_cls is not None:
            est = self._est_cls(**self._est_kwargs)
            est.fit(X, y.astype(np.int64))
            self._est_up = list(est.classes_).index(1)
            self._est = est
        else:
            coef, intercept = fit_logistic(X, y, self.l2, self.iterations)
            self._coef = coef.tolist()
            self.intercept = intercept
        self.fits += 1
        return True
