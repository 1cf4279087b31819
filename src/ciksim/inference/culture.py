"""Fit the culture model to a lab's own counts and forecast the harvest day.

Input: a tidy CSV ``donor,day,quantity,value[,sd]`` with ``quantity`` one of
``total_cells``, ``cd3cd56_pct``, ``cd3_pct``, ``nk_pct``, ``viability_pct``. Each donor is
fitted on its own. Likelihood: log counts with SD ``sd/value`` (default 0.15, an assumed
cell-counting CV) and percentages with SD ``sd`` (default 3 points, assumed flow-cytometry
error), independent normal errors. Priors: uniform over each free parameter's declared
plausible range, on a log scale where the range is positive and spans more than a factor 10,
otherwise on the natural scale. The posterior is sampled with emcee (affine-invariant
ensemble; the log-probability is vectorised so each step is one batched simulation).

Donors differ in every donor-varying culture parameter, not only in the fitted ones. Fixing
the others at their medians would pretend they are known and make the intervals and the
forecast too narrow (wrong result #6 of issue 17). So every donor-varying parameter that is
not fitted is a nuisance parameter, marginalised by sampling it alongside: an extra MCMC
dimension ``z`` with a standard-normal prior, mapped to the parameter by the model's own
between-donor distribution (logit-normal on the declared range around the protocol's median
with the declared variability, see :mod:`ciksim.model.variability`). The data update it
where they inform it; elsewhere it keeps the population spread, which widens the fitted
parameters' intervals and the forecast.
Estimates are posterior medians with 95% credible intervals; the forecast (day a dose is
reached) is the posterior predictive distribution over the joint samples (fitted and
nuisance parameters together).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import model_validator

from ciksim.engines import simulate
from ciksim.engines.ode import SolverSettings
from ciksim.errors import CikError, DataError
from ciksim.inference import FIT_STEPS, FIT_WALKERS
from ciksim.model import Parameter
from ciksim.model.variability import bounded_draw
from ciksim.models.culture import culture_model
from ciksim.protocol import Protocol
from ciksim.schemas.base import Schema, limit
from ciksim.schemas.options import check_count
from ciksim.schemas.tables import number, read_table, text

QUANTITIES = ("total_cells", "cd3cd56_pct", "cd3_pct", "nk_pct", "viability_pct")
DEFAULT_FREE = ("phi_max", "phi_min", "k_conv")
COUNT_CV = 0.15
PCT_SD = 3.0
FORECAST_DAYS = 28
SOLVER = SolverSettings(method="compiled")
#: A kept chain shorter than this many integrated autocorrelation times is flagged as too
#: short. Basis: emcee's guidance that an estimate of the autocorrelation time tau is to be
#: trusted only from a chain longer than F * tau with F >= 50 (emcee's autocorrelation
#: tutorial; ``emcee.autocorr.integrated_time``'s default ``tol = 50``): below that the
#: estimate itself, and so the intervals' Monte Carlo error, is unknown (short chains
#: underestimate tau: 47 steps from 1,500 kept steps, 59 from 3,000, same donor).
MIN_AUTOCORR = 50


def sampler_moves() -> list[tuple[Any, float]]:
    """The ensemble's proposals: differential evolution (80%) and its snooker variant (20%).
    With the 12 sampled dimensions of the default fit, emcee's default stretch move had an
    autocorrelation time of ~130 steps (so 500 steps were ~2 of them and the intervals came
    out of unconverged chains); these have ~40-60."""
    import emcee

    return [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)]

#: How ``fit_culture`` estimates, in one sentence for reports.
FIT_METHOD = ("Bayesian fit per donor: emcee ensemble sampler (differential-evolution "
              "moves), uniform priors "
              "over the declared ranges (log scale where wide); the other donor-varying "
              "parameters marginalised over their between-donor spread; log counts with 15% CV, "
              "percentages with 3-point SD unless the data give sd; 95% credible intervals.")


def log_scaled(p: Parameter) -> bool:
    """Whether a free parameter is fitted (uniform prior) on the log scale: its range is
    positive and spans more than a factor 10; otherwise on the natural scale."""
    return p.low > 0 and p.high / p.low > 10


_Donor = text(required=True, max_length=100, what="give a donor name")
_Quantity = text(required=True)
_Day = number(ge=0, le=limit("max_culture_days"), what="days since seeding")
_Value = number(ge=0, what="give the count or the percentage")
_Sd = number(gt=0, optional=True, what="the measurement SD, > 0, or leave it empty")


class CountsRow(Schema):
    """One measurement of one donor's culture (a row of the tidy counts CSV)."""

    donor: _Donor
    day: _Day
    quantity: _Quantity
    value: _Value
    sd: _Sd = None

    @model_validator(mode="after")
    def _by_quantity(self) -> CountsRow:
        q = self.quantity
        if q not in QUANTITIES:
            raise ValueError(f"column quantity: unknown quantity {q!r}; use one of "
                             f"{', '.join(QUANTITIES)}")
        if q == "total_cells" and self.value <= 0:
            raise ValueError("column value: cell counts must be > 0")
        if q.endswith("_pct") and self.value > 100:
            raise ValueError(f"column value: {self.value:g} is not a percentage (0-100)")
        return self


@dataclass(frozen=True)
class CultureData:
    """Validated counts: one DataFrame with donor, day, quantity, value, sd (NaN if none)."""

    rows: pd.DataFrame

    @property
    def donors(self) -> list[str]:
        return list(dict.fromkeys(self.rows["donor"]))

    @classmethod
    def read_csv(cls, path: str | Path, origin: str | None = None) -> CultureData:
        last: dict[tuple[str, str], float] = {}
        recs = []
        for where, _, r in read_table(path, CountsRow, what="counts", origin=origin):
            key = (r.donor, r.quantity)
            if key in last and r.day <= last[key]:
                raise DataError(f"{where}, column day: day {r.day:g} does not follow day "
                                f"{last[key]:g} for donor {r.donor!r} and {r.quantity}; list "
                                "days in increasing order, each once")
            last[key] = r.day
            recs.append({"donor": r.donor, "day": r.day, "quantity": r.quantity,
                         "value": r.value, "sd": np.nan if r.sd is None else r.sd})
        return cls(pd.DataFrame.from_records(recs))


def _predict(days: np.ndarray, protocol: Protocol, pars: dict[str, Any], t_end: float
             ) -> dict[str, np.ndarray]:
    """Model quantities (n_days, n_sets) at the given days.

    Always integrated with the compiled engine: each parameter set has its own error
    control, so a set gives the same numbers alone or in a batch of walkers (and ~20x
    faster than scipy's batched RK45). The engine refuses a whole batch when one set does
    not finish; the sets are then integrated one by one, and a set that does not finish on
    its own has NaN quantities (a log-likelihood of -inf), so a walker's value never
    depends on its batch-mates or switches integrator mid-chain."""
    model = culture_model()
    try:
        r = simulate(model, protocol, t_end, times=days, parameters=pars, settings=SOLVER)
    except CikError as exc:
        if type(exc) is not CikError:  # a ModelError, DataError ...: bad input, not a solve
            raise
        n = max(np.size(v) for v in pars.values())
        if n == 1:
            return {q: np.full((len(days), 1), np.nan) for q in _QUANTITIES}
        alone = [_predict(days, protocol, {k: v[i] if np.ndim(v) else v
                                            for k, v in pars.items()}, t_end)
                 for i in range(n)]
        return {q: np.hstack([a[q] for a in alone]) for q in _QUANTITIES}
    total = r["total_cells"]
    return {"total_cells": total / r.kept,
            "cd3cd56_pct": 100 * r["cd3cd56_cells"] / total,
            "cd3_pct": 100 * r["cd3_cells"] / total, "nk_pct": 100 * r["NK"] / total,
            "viability_pct": 100 * r["viability"], "cd3cd56_cells": r["cd3cd56_cells"],
            "cd3_cells": r["cd3_cells"]}


_QUANTITIES = (*QUANTITIES, "cd3cd56_cells", "cd3_cells")


def _predict_every(days: np.ndarray, protocol: Protocol, pars: dict[str, Any], t_end: float,
                   what: str) -> dict[str, np.ndarray]:
    """``_predict`` where every set must be integrated: else a CikError naming ``what``."""
    pred = _predict(days, protocol, pars, t_end)
    lost = np.isnan(pred["total_cells"]).any(axis=0)
    if lost.any():
        raise CikError(f"{what}: the compiled engine could not integrate {int(lost.sum())} "
                       f"of {lost.size} parameter set(s) to day {t_end:g}, so nothing is "
                       "predicted from them; give parameters within their declared ranges "
                       "or an earlier last day")
    return pred


@dataclass
class DonorFit:
    donor: str
    free: tuple[str, ...]
    samples: np.ndarray  # (n_samples, n_free), natural scale
    start_cells: float
    protocol: Protocol
    #: donor-varying parameters not fitted, marginalised (see the module docstring)
    nuisance: tuple[str, ...] = ()
    #: their joint samples with ``samples`` (n_samples, n_nuisance), natural scale
    nuisance_samples: np.ndarray | None = None
    #: sampler diagnostics: mean acceptance fraction of the walkers, and the integrated
    #: autocorrelation time (steps) per sampled dimension, fitted then nuisance (emcee's
    #: estimate, made for any chain length; trusted only when the kept chain spans
    #: ``MIN_AUTOCORR`` of them)
    acceptance: float = float("nan")
    autocorr: np.ndarray | None = None
    #: steps per walker after burn-in
    steps_kept: int = 0

    def diagnostics(self) -> dict[str, Any]:
        """The sampler's acceptance, longest autocorrelation time (steps), the steps kept,
        and whether the kept chain spans at least ``MIN_AUTOCORR`` autocorrelation times
        (shorter, the intervals may be too narrow: give more steps)."""
        tau = float(np.nanmax(self.autocorr)) if self.autocorr is not None and \
            np.isfinite(self.autocorr).any() else float("nan")
        return {"donor": self.donor, "acceptance": self.acceptance,
                "autocorrelation_steps": tau, "steps_kept": self.steps_kept,
                "long_enough": bool(self.steps_kept >= MIN_AUTOCORR * tau)}

    def estimates(self) -> pd.DataFrame:
        model = culture_model()
        q = np.quantile(self.samples, [0.5, 0.025, 0.975], axis=0)
        return pd.DataFrame({
            "donor": self.donor, "parameter": list(self.free), "estimate": q[0],
            "ci_low": q[1], "ci_high": q[2],
            "unit": [model.parameter_by_name[f].unit for f in self.free],
            "default": [model.parameter_by_name[f].value for f in self.free]})

    def predictive(self, days: np.ndarray, draws: int = 200) -> dict[str, np.ndarray]:
        idx = np.linspace(0, len(self.samples) - 1, min(draws, len(self.samples))).astype(int)
        pars: dict[str, Any] = {f: self.samples[idx, j] for j, f in enumerate(self.free)}
        if self.nuisance_samples is not None:
            pars.update({f: self.nuisance_samples[idx, j]
                         for j, f in enumerate(self.nuisance)})
        pars["start_cells"] = self.start_cells
        return _predict_every(days, self.protocol, pars, float(days[-1]),
                              f"donor {self.donor!r}, posterior draws")

    def forecast(self, dose: float, cells: str = "cd3cd56") -> dict[str, Any]:
        """Day the culture holds ``dose`` cells (median, 95% prediction interval)."""
        key = {"cd3cd56": "cd3cd56_cells", "cd3": "cd3_cells", "total": "total_cells"}
        if cells not in key:
            raise DataError(f"cells: use cd3cd56, cd3 or total, not {cells!r}")
        days = np.arange(0.0, FORECAST_DAYS + 1)
        pred = self.predictive(days)[key[cells]]
        reached = pred >= dose
        first = np.where(reached.any(axis=0), days[np.argmax(reached, axis=0)], np.inf)
        share = float(np.isfinite(first).mean())
        q = np.quantile(first, [0.5, 0.025, 0.975], method="inverted_cdf")
        return {"donor": self.donor, "dose": dose, "cells": cells,
                "day_median": None if not np.isfinite(q[0]) else float(q[0]),
                "day_low": None if not np.isfinite(q[1]) else float(q[1]),
                "day_high": None if not np.isfinite(q[2]) else float(q[2]),
                "probability_by_day_28": share}


def donor_log_likelihood(data: CultureData, donor: str, protocol: Protocol,
                         free: Sequence[str]) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """The log-likelihood of one donor's counts (up to a constant) as a function of rows of
    ``free`` parameter values (natural scale, shape (n, n_free); parameters not in ``free``
    at the protocol's values), and the donor's seeded cells (its day-0 count, else 1e8).
    See the module docstring for the noise model."""
    rows = data.rows[data.rows["donor"] == donor]
    days = np.unique(rows["day"].to_numpy())
    t_end = max(float(days[-1]), 1.0)
    start = rows[(rows["quantity"] == "total_cells") & (rows["day"] == 0)]["value"]
    start_cells = float(start.iloc[0]) if len(start) else 1e8
    obs = [(np.searchsorted(days, r.day), r.quantity, r.value, r.sd)
           for r in rows.itertuples()]

    def loglik(nat: np.ndarray) -> np.ndarray:
        nat = np.atleast_2d(nat)
        pars: dict[str, Any] = {f: nat[:, j] for j, f in enumerate(free)}
        pars["start_cells"] = start_cells
        pred = _predict(days, protocol, pars, t_end)
        ll = np.zeros(len(nat))
        for i, q, v, sd in obs:
            if q == "total_cells":
                s = sd / v if sd == sd else COUNT_CV
                ll -= 0.5 * ((np.log(v) - np.log(pred[q][i])) / s) ** 2
            else:
                s = sd if sd == sd else PCT_SD
                ll -= 0.5 * ((v - pred[q][i]) / s) ** 2
        return np.where(np.isfinite(ll), ll, -np.inf)

    return loglik, start_cells


def nuisance_parameters(protocol: Protocol, free: Sequence[str]) -> list[tuple[Parameter, float]]:
    """The donor-varying culture parameters not in ``free``, each with its median (the
    protocol's value, else the declared one): the nuisance parameters of a fit."""
    model = culture_model()
    values = protocol.parameter_values(model)
    return [(p, float(values.get(p.name, p.value))) for p in model.parameters
            if p.variability > 0 and p.name not in free]


def fit_culture(data: CultureData, *, protocol: str | Path | Protocol = "cik-standard",
                free: Sequence[str] = DEFAULT_FREE, walkers: int = FIT_WALKERS,
                steps: int = FIT_STEPS, burn: int = FIT_STEPS // 4, seed: int = 0,
                marginalise: bool = True,
                progress: Callable[[int, int], None] | None = None) -> list[DonorFit]:
    """Sample the posterior of ``free`` parameters for every donor (see module docstring).

    ``marginalise`` (default): sample the other donor-varying parameters as nuisance
    parameters over their between-donor spread; False fixes them at their medians (the
    narrower, overconfident fit of earlier versions, kept for comparison). ``walkers`` must
    be at least twice the number of sampled dimensions (fitted + nuisance).
    ``progress(done, total)`` counts MCMC steps over all donors (every 50 steps)."""
    import emcee

    model = culture_model()
    proto = protocol if isinstance(protocol, Protocol) else Protocol.load(protocol)
    free = tuple(free)
    bad = [f for f in free if f not in model.parameter_by_name]
    if bad or not free:
        raise DataError(f"free: unknown parameter(s) {', '.join(bad) or '(none given)'}; "
                        f"choose from {', '.join(model.parameter_names)}")
    nuis = nuisance_parameters(proto, free) if marginalise else []
    ndim = len(free) + len(nuis)
    walkers = check_count("max_walkers", walkers, field="walkers", minimum=2 * ndim)
    steps = check_count("max_steps", steps, field="steps")
    burn = check_count("max_steps", burn, field="burn", minimum=0)
    if steps <= burn:
        raise DataError(f"steps: need more steps ({steps}) than burn-in steps ({burn})")
    decl = [model.parameter_by_name[f] for f in free]
    # uniform priors on each range, on a log scale only where it is positive and wide
    logs = np.array([log_scaled(p) for p in decl])
    lo = np.array([np.log(p.low) if g else p.low for p, g in zip(decl, logs, strict=True)])
    hi = np.array([np.log(p.high) if g else p.high for p, g in zip(decl, logs, strict=True)])

    nf = len(free)

    def natural(u: np.ndarray) -> np.ndarray:
        return np.where(logs, np.exp(u[:, :nf]), u[:, :nf])

    def nuisance_values(x: np.ndarray) -> np.ndarray:
        return np.column_stack([bounded_draw(p, np.full(len(x), med), p.variability,
                                             x[:, nf + j])
                                for j, (p, med) in enumerate(nuis)]) \
            if nuis else np.empty((len(x), 0))
    names = free + tuple(p.name for p, _ in nuis)
    fits = []
    for d, donor in enumerate(data.donors):
        loglik, start_cells = donor_log_likelihood(data, donor, proto, names)

        def log_prob(x: np.ndarray, loglik: Callable = loglik) -> np.ndarray:
            x = np.atleast_2d(x)
            inside = np.all((x[:, :nf] >= lo) & (x[:, :nf] <= hi), axis=1)
            out = np.full(len(x), -np.inf)
            if inside.any():
                xi = x[inside]
                out[inside] = loglik(np.hstack([natural(xi), nuisance_values(xi)])) \
                    - 0.5 * np.sum(xi[:, nf:] ** 2, axis=1)
            return out

        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(d,)))
        # start the ensemble at the best of 256 prior draws (one batched evaluation)
        n0 = max(256, walkers)
        trial = np.hstack([lo + (hi - lo) * rng.random((n0, nf)),
                           rng.standard_normal((n0, len(nuis)))])
        lp = log_prob(trial)
        best = trial[np.argsort(-lp)[:walkers]]
        width = np.concatenate([hi - lo, np.ones(len(nuis))])
        lower = np.concatenate([lo, np.full(len(nuis), -np.inf)])
        upper = np.concatenate([hi, np.full(len(nuis), np.inf)])
        p0 = np.clip(best + 0.01 * width * rng.standard_normal(best.shape), lower, upper)
        sampler = emcee.EnsembleSampler(walkers, ndim, log_prob, vectorize=True,
                                        moves=sampler_moves())
        sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
        for k, _ in enumerate(sampler.sample(p0, iterations=steps), start=1):
            if progress is not None and (k % 50 == 0 or k == steps):
                progress(d * steps + k, len(data.donors) * steps)
        chain = sampler.get_chain(discard=burn, flat=True)
        with np.errstate(invalid="ignore"):  # NaN for a dimension no walker has moved in
            tau = emcee.autocorr.integrated_time(sampler.get_chain(discard=burn), tol=0)
        fits.append(DonorFit(str(donor), free, natural(chain), start_cells, proto,
                             tuple(p.name for p, _ in nuis),
                             nuisance_values(chain) if nuis else None,
                             float(np.mean(sampler.acceptance_fraction)), tau, steps - burn))
    return fits


def simulated_counts(params: dict[str, float], *, days: Sequence[float], seed: int,
                     protocol: str = "cik-standard", donor: str = "sim",
                     start_cells: float = 1e8) -> pd.DataFrame:
    """Synthetic counts from the model with the module's noise (for recovery tests)."""
    rng = np.random.default_rng(seed)
    d = np.asarray(days, float)
    pred = _predict_every(d, Protocol.load(protocol), {**params, "start_cells": start_cells},
                          float(d[-1]), "simulated counts")
    rows = []
    for i, day in enumerate(d):
        total = pred["total_cells"][i, 0] * (1.0 if day == 0 else
                                             math.exp(COUNT_CV * rng.standard_normal()))
        rows.append((donor, day, "total_cells", total))
        for q in ("cd3cd56_pct", "cd3_pct", "nk_pct"):
            rows.append((donor, day, q, float(np.clip(pred[q][i, 0] + PCT_SD *
                                                      rng.standard_normal(), 0, 100))))
    return pd.DataFrame(rows, columns=["donor", "day", "quantity", "value"])
