"""Release-assay data (51Cr, LDH, calcein, flow): % specific lysis, lytic units, fits.

Input is a tidy CSV with columns ``effector,target,et_ratio,kind,replicate,value``; ``kind``
is ``spontaneous``, ``maximum`` or ``experimental`` (``et_ratio`` empty for the first two).
Control rows are matched to experimental rows by target, and by effector too when the
control rows name one.

- % specific lysis = 100·(experimental − spontaneous)/(maximum − spontaneous), per
  replicate, with the mean spontaneous and maximum release of the target.
- Lytic units (Pross 1981, exponential fit): %L(E:T) = A·(1 − exp(−k·E:T)) is fitted to
  the replicate values; E:T_x = −ln(1 − x/A)/k and LU_x per 10⁷ effectors =
  10⁷ / (E:T_x · targets per well). Undefined (null) where the plateau A ≤ x.
- The killing model's rate is fitted too: one effector type with per-cell lethal hit rate
  ``k_kill`` (1/h) against a target whose susceptible fraction is fitted, over the assay
  duration; 95% confidence intervals from the Jacobian (t distribution, log scale for k).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError, model_validator
from scipy import stats
from scipy.optimize import least_squares
from scipy.special import expit

from ciksim.errors import CikWarning, DataError
from ciksim.schemas.base import Schema
from ciksim.schemas.options import check_horizon
from ciksim.schemas.tables import duplicates, number, read_table, row_error, text

COLUMNS = ("effector", "target", "et_ratio", "kind", "replicate", "value")
KINDS = ("spontaneous", "maximum", "experimental")
SPONTANEOUS_LIMIT = 0.30  # flag spontaneous release above 30% of maximum (convention, U)
LU_METHOD = ("Pross 1981 exponential fit: %L = A(1 - exp(-k E:T)); "
             "LU_x per 1e7 = 1e7 / (E:T_x x targets per well)")


class AssayWarning(CikWarning):
    """Something in the assay data deserves attention (e.g. high spontaneous release)."""


#: Above this % specific lysis a replicate is refused: its experimental release exceeds
#: the maximum release by far more than plate noise (convention, assumed).
MAX_LYSIS_PCT = 120.0


_Text = text()
_Effector = text(what="an experimental row names its effector")
_Target = text(required=True, what="give the target cells")
_Et = number(gt=0, optional=True)
_Value = number(ge=0, what="counts and fluorescence are >= 0 (give the counts or fluorescence)")


class LysisRow(Schema):
    """One well of a release-assay plate (a row of the tidy lysis CSV)."""

    effector: _Effector
    target: _Target
    et_ratio: _Et
    kind: _Text
    replicate: _Text
    value: _Value

    @model_validator(mode="after")
    def _kind_rules(self) -> LysisRow:
        kind = self.kind.lower()
        if kind not in KINDS:
            raise ValueError(f"column kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        if kind == "experimental":
            if self.et_ratio is None:
                raise ValueError("column et_ratio: an experimental row needs its E:T ratio")
            if not self.effector:
                raise ValueError("column effector: an experimental row names its effector")
        elif self.et_ratio is not None:
            raise ValueError(f"column et_ratio: leave it empty for {kind} rows (got "
                             f"{self.et_ratio:g})")
        return self


@dataclass(frozen=True)
class LysisData:
    """Validated assay rows (one per well) with their CSV line numbers."""

    rows: pd.DataFrame

    @classmethod
    def read_csv(cls, path: str | Path, origin: str | None = None) -> LysisData:
        """Read and validate; errors name the line (of ``origin``, default the path), the
        column and the fix."""
        read = list(read_table(path, LysisRow, what="lysis data", origin=origin))
        return cls._of(read)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, origin: str = "data") -> LysisData:
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise DataError(f"{origin}: missing column(s) {', '.join(missing)}")
        read = []
        for i, raw in enumerate(df[list(COLUMNS)].itertuples(index=False), start=2):
            rec = {c: ("" if (isinstance(v, float) and math.isnan(v)) else str(v).strip())
                   for c, v in zip(COLUMNS, raw, strict=True)}
            where = f"{origin}, row {i - 1}"
            try:
                read.append((where, i, LysisRow.model_validate(rec)))
            except ValidationError as exc:
                raise DataError(row_error(exc, where)) from None
        return cls._of(read)

    @classmethod
    def _of(cls, read: list[tuple[str, int, LysisRow]]) -> LysisData:
        records = [{"line": line, "effector": r.effector, "target": r.target,
                    "et_ratio": math.nan if r.et_ratio is None else r.et_ratio,
                    "kind": r.kind.lower(), "replicate": r.replicate, "value": r.value}
                   for _, line, r in read]
        duplicates([(r["effector"], r["target"], r["et_ratio"] if r["kind"] == "experimental"
                     else None, r["kind"], r["replicate"]) for r in records],
                   [w for w, _, _ in read], "effector, target, E:T, kind and replicate")
        return cls(pd.DataFrame.from_records(records))


@dataclass(frozen=True)
class ExponentialFit:
    """%L = A(1 − exp(−k·E:T)) fitted to replicate values."""

    plateau_pct: float
    k_per_et: float

    def lysis(self, et: np.ndarray | float) -> np.ndarray:
        return self.plateau_pct * (1 - np.exp(-self.k_per_et * np.asarray(et, float)))

    def et_for(self, pct: float) -> float | None:
        if pct >= self.plateau_pct:
            return None
        return float(-math.log(1 - pct / self.plateau_pct) / self.k_per_et)


def lytic_units(fit: ExponentialFit, pct: float, targets_per_well: float,
                per: float = 1e7) -> float | None:
    """Lytic units at ``pct``% lysis per ``per`` effectors (Pross 1981 exponential fit)."""
    et = fit.et_for(pct)
    return None if et is None else per / (et * targets_per_well)


def fit_exponential(et: np.ndarray, lysis_pct: np.ndarray) -> ExponentialFit:
    """Least-squares fit of the Pross exponential (A in (0, 100] %, k > 0)."""
    et = np.asarray(et, float)
    y = np.asarray(lysis_pct, float)

    def resid(x: np.ndarray) -> np.ndarray:
        return x[0] * (1 - np.exp(-np.exp(x[1]) * et)) - y

    a0 = float(np.clip(np.max(y) * 1.2, 1.0, 100.0))
    k0 = math.log(max(1e-3, 1.0 / max(float(np.median(et)), 1e-6)))
    res = least_squares(resid, [a0, k0], bounds=([1e-6, -20], [100.0, 10]))
    return ExponentialFit(float(res.x[0]), float(math.exp(res.x[1])))


@dataclass(frozen=True)
class ModelFit:
    """Killing-model fit: per-cell lethal hit rate and susceptible fraction, with 95% CIs."""

    k_kill_per_h: float
    k_kill_ci: tuple[float, float] | None
    susceptible_fraction: float
    susceptible_ci: tuple[float, float] | None
    n: int


def model_lysis(k_kill: float, frac: float, et: np.ndarray, hours: float,
                targets_per_well: float) -> np.ndarray:
    """% specific lysis of the killing model with one effector type (rate ``k_kill`` 1/h)
    against targets of which ``frac`` are susceptible (fully recognised)."""
    from ciksim.engines import simulate
    from ciksim.models.killing import killing_model

    et = np.asarray(et, float)
    pars = {"f_cik": 1.0, "f_t": 0.0, "f_nk": 0.0, "f_nkg2d_cik": 1.0, "lig_level": 1.0,
            "s_other": 0.0, "hla_i": 0.0, "hla_mm": 0.0, "k_spont": 0.0, "g_tgt": 0.0,
            "lig_frac": float(frac), "k_cik": float(k_kill), "T0": float(targets_per_well),
            "et_ratio": et}
    r = simulate(killing_model(), None, hours, times=[0.0, hours], parameters=pars)
    live = r["live_targets"][-1]
    return 100 * (1 - live / targets_per_well)


def fit_killing_model(et: np.ndarray, lysis_pct: np.ndarray, *, hours: float,
                      targets_per_well: float) -> ModelFit:
    """Fit ``k_kill`` (log scale) and the susceptible fraction (logit) by least squares.

    When the fraction reaches 1 (all targets susceptible, e.g. K562) it is fixed there and
    only ``k_kill`` is fitted. Intervals that span more than a factor 1000 are reported as
    None: the data do not identify the parameter (e.g. no lysis at all).
    """
    et = np.asarray(et, float)
    y = np.asarray(lysis_pct, float)
    uniq, inv = np.unique(et, return_inverse=True)

    def predict(k_log: float, logit: float) -> np.ndarray:
        return model_lysis(math.exp(k_log), float(expit(logit)), uniq, hours,
                           targets_per_well)[inv]

    top = float(np.clip(np.max(y), 5, 95))
    x0 = np.array([math.log(0.5), math.log(top / (100 - top))])
    res = least_squares(lambda x: predict(x[0], x[1]) - y, x0, bounds=([-12, -10], [5, 10]),
                        diff_step=1e-4)
    free_fraction = float(expit(res.x[1])) < 0.995
    if not free_fraction:
        res = least_squares(lambda x: predict(x[0], 30.0) - y, res.x[:1], bounds=([-12], [5]),
                            diff_step=1e-4)
    n, p = y.size, res.x.size
    cis: list[tuple[float, float] | None] = [None, None]
    if n > p:
        s2 = float(np.sum(res.fun**2) / (n - p))
        try:
            cov = s2 * np.linalg.inv(res.jac.T @ res.jac)
            tq = float(stats.t.ppf(0.975, n - p))
            se = np.sqrt(np.clip(np.diag(cov), 0, None))
            if se[0] * tq < math.log(1e3):
                cis[0] = (math.exp(res.x[0] - tq * se[0]), math.exp(res.x[0] + tq * se[0]))
            if free_fraction:
                cis[1] = (float(expit(res.x[1] - tq * se[1])),
                          float(expit(res.x[1] + tq * se[1])))
        except np.linalg.LinAlgError:
            pass
    frac = float(expit(res.x[1])) if free_fraction else 1.0
    return ModelFit(math.exp(res.x[0]), cis[0], frac, cis[1], n)


@dataclass
class LysisAnalysis:
    """Everything ``ciksim lysis`` reports."""

    groups: pd.DataFrame
    lytic: pd.DataFrame
    fits: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    replicates: pd.DataFrame | None = None

    def as_json(self) -> dict[str, Any]:
        def records(df: pd.DataFrame, cols: list[str]) -> list[dict[str, Any]]:
            out = []
            for rec in df[cols].to_dict("records"):
                out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                            for k, v in rec.items()})
            return out

        return {
            "groups": records(self.groups, ["effector", "target", "et_ratio", "lysis_pct_mean",
                                            "lysis_pct_sd", "n"]),
            "lytic_units": records(self.lytic, ["effector", "target", "lu20_per_1e7",
                                                "lu30_per_1e7"]),
            "fits": records(self.fits, list(self.fits.columns)),
            "lytic_unit_method": LU_METHOD,
            "warnings": list(self.warnings),
        }


def analyse(data: LysisData, *, targets_per_well: float = 1e4, hours: float = 4.0,
            fit_model: bool = True) -> LysisAnalysis:
    """% specific lysis per group, spontaneous-release check, lytic units and fits."""
    if not math.isfinite(targets_per_well) or targets_per_well <= 0:
        raise DataError(f"targets per well must be > 0, got {targets_per_well!r}")
    check_horizon("max_assay_hours", hours, field="hours")
    df = data.rows
    exp = df[df["kind"] == "experimental"]
    if exp.empty:
        raise DataError("data: no experimental rows (kind = experimental)")
    notes: list[str] = []
    per_rep = []
    for (eff, tgt), grp in exp.groupby(["effector", "target"], sort=False):
        spont, maxi = _controls(df, eff, tgt)
        if maxi <= spont:
            raise DataError(f"target {tgt!r} (effector {eff!r}): mean maximum release "
                            f"{maxi:g} <= mean spontaneous release {spont:g}; check the "
                            "control rows (maximum must exceed spontaneous)")
        ratio = spont / maxi
        if ratio > SPONTANEOUS_LIMIT:
            msg = (f"target {tgt!r} (effector {eff!r}): spontaneous release is "
                   f"{100 * ratio:.0f}% of maximum (> {100 * SPONTANEOUS_LIMIT:.0f}%); "
                   "the targets may have been damaged")
            if msg not in notes:
                notes.append(msg)
        lysis = 100 * (grp["value"] - spont) / (maxi - spont)
        if (lysis > MAX_LYSIS_PCT).any():
            bad = grp[lysis > MAX_LYSIS_PCT].iloc[0]
            raise DataError(f"line {bad['line']}: {lysis.max():.0f}% specific lysis of "
                            f"{tgt!r} by {eff!r} (above {MAX_LYSIS_PCT:g}%): its experimental "
                            f"release exceeds the maximum release {maxi:g}; check the "
                            "maximum-release wells and this row")
        per_rep.append(grp.assign(lysis_pct=lysis, spontaneous=spont, maximum=maxi))
    reps = pd.concat(per_rep, ignore_index=True)
    groups = (reps.groupby(["effector", "target", "et_ratio"], sort=False)["lysis_pct"]
              .agg(lysis_pct_mean="mean", lysis_pct_sd="std", n="count").reset_index())
    lu_rows, fit_rows = [], []
    for (eff, tgt), grp in reps.groupby(["effector", "target"], sort=False):
        expfit = fit_exponential(grp["et_ratio"].to_numpy(), grp["lysis_pct"].to_numpy())
        lu = {x: lytic_units(expfit, x, targets_per_well) for x in (20, 30)}
        for x, v in lu.items():
            if v is None:
                notes.append(f"{eff} vs {tgt}: fitted plateau {expfit.plateau_pct:.0f}% is "
                             f"below {x}%, so LU{x} is undefined")
        lu_rows.append({"effector": eff, "target": tgt, "lu20_per_1e7": lu[20],
                        "lu30_per_1e7": lu[30], "plateau_pct": expfit.plateau_pct,
                        "k_per_et": expfit.k_per_et, "targets_per_well": targets_per_well})
        row: dict[str, Any] = {"effector": eff, "target": tgt}
        if fit_model:
            mf = fit_killing_model(grp["et_ratio"].to_numpy(), grp["lysis_pct"].to_numpy(),
                                   hours=hours, targets_per_well=targets_per_well)
            row.update({
                "k_kill_per_h": mf.k_kill_per_h,
                "k_kill_ci_low": mf.k_kill_ci[0] if mf.k_kill_ci else None,
                "k_kill_ci_high": mf.k_kill_ci[1] if mf.k_kill_ci else None,
                "susceptible_fraction": mf.susceptible_fraction,
                "susceptible_ci_low": mf.susceptible_ci[0] if mf.susceptible_ci else None,
                "susceptible_ci_high": mf.susceptible_ci[1] if mf.susceptible_ci else None,
                "n": mf.n, "hours": hours,
            })
            if mf.k_kill_ci is None:
                notes.append(f"{eff} vs {tgt}: the data do not pin down k_kill (too few "
                             "points or too little lysis); no confidence interval")
        fit_rows.append(row)
    for msg in notes:
        warnings.warn(msg, AssayWarning, stacklevel=2)
    return LysisAnalysis(groups, pd.DataFrame(lu_rows), pd.DataFrame(fit_rows), notes, reps)


def _controls(df: pd.DataFrame, effector: str, target: str) -> tuple[float, float]:
    out = []
    for kind in ("spontaneous", "maximum"):
        rows = df[(df["kind"] == kind) & (df["target"] == target)]
        named = rows[rows["effector"] == effector]
        rows = named if not named.empty else rows[rows["effector"] == ""]
        if rows.empty:
            raise DataError(f"target {target!r}: no {kind} rows (kind = {kind}, et_ratio "
                            f"empty) for effector {effector!r} or without an effector")
        out.append(float(rows["value"].mean()))
    return out[0], out[1]


def plot_lysis(analysis: LysisAnalysis, ax: Any = None) -> Any:
    """% specific lysis vs E:T (mean ± SD) with the exponential fits; returns the Axes."""
    from ciksim.report.plots import pyplot

    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    for i, ((eff, tgt), grp) in enumerate(analysis.groups.groupby(["effector", "target"],
                                                                   sort=False)):
        color = f"C{i % 10}"
        ax.errorbar(grp["et_ratio"], grp["lysis_pct_mean"], yerr=grp["lysis_pct_sd"].fillna(0),
                    fmt="o", color=color, capsize=3, label=f"{eff} vs {tgt}")
        lu = analysis.lytic[(analysis.lytic.effector == eff) & (analysis.lytic.target == tgt)]
        if not lu.empty:
            fit = ExponentialFit(float(lu.plateau_pct.iloc[0]), float(lu.k_per_et.iloc[0]))
            x = np.geomspace(grp["et_ratio"].min() / 1.5, grp["et_ratio"].max() * 1.5, 100)
            ax.plot(x, fit.lysis(x), color=color, lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("E:T ratio")
    ax.set_ylabel("% specific lysis")
    ax.set_title("Cytotoxicity (mean ± SD; lines: exponential fit)")
    ax.legend(fontsize=7)
    return ax
