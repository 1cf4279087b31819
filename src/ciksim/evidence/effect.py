"""The in vivo CIK effect as a few identifiable parameters, and the bias model.

Clinical outcomes cannot tell apart the share of infused cells reaching the marrow
(``f_marrow``) from their activity there relative to a well (``s_vivo``): at low effector
density the marrow kill rate of a leukemic cell is proportional to their product. Nor can
they tell the effectors' median half-life from their potency (the data see kill × time).
So the calibrated effect is:

* ``potency`` = ``f_marrow`` × ``s_vivo``: the marrow kill rate per infused cell, relative to
  one effector acting at well activity. Its prior is log-uniform over the product of the two
  declared ranges. It is mapped back by a *canonical split*: both factors sit at the same
  quantile of their own log range, so each stays inside its declared range and the product
  is exact.
* ``persistence_sd``: the between-patient log-SD of the effectors' half-life around its
  declared median (``t_half_E``); each patient's half-life is the median × exp(ω z) with z a
  standard normal truncated at ±2.5 and to half-lives of 1-60 days (bounded, drawn by
  inverse CDF: no point masses). Outcome data barely
  identify it; its prior comes from the CAR-T cellular-kinetics proxy (clinical_more M29).
* optionally ``t_half_E`` (the median half-life), held at its declared value by default
  because it is confounded with ``potency``.

The well-level mechanism (killing model) is untouched: assays keep their parameters; this
layer only sets the patient model's ``f_marrow``, ``s_vivo`` and ``t_half_E``.

Bias model (non-randomised evidence): each study whose design is not randomised gets
``bias:<study>``, a shift of the treated arm's log-odds (of log hazard ratio for
hazard-ratio endpoints; of the single arm's log-odds for single-arm designs) with an
informative normal prior whose SD depends on the design (:data:`BIAS_SD`). Each two-arm
study with a proportion endpoint also gets ``offset:<study>``, a shift of both arms'
log-odds for a population that differs from the model scenario (:data:`OFFSET_SD`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ciksim.errors import DataError
from ciksim.evidence.studies import Design, Evidence, Study

#: Prior SD of the design bias on the log-odds scale (90% of the prior mass within ×/÷
#: exp(1.645 SD) of the odds). Assumed: the reference pack gives no elicited biases;
#: widths grow as the comparison weakens (matched < patient choice < historical < none).
BIAS_SD = {
    Design.matched_controls: 0.4,
    Design.patient_choice: 0.6,
    Design.historical_controls: 0.8,
    Design.single_arm: 1.0,
}
#: Prior SD of a study population's baseline log-odds shift against its model scenario.
#: Assumed: a population may differ from the scenario by up to ×/÷ 5 in odds (90%).
OFFSET_SD = 1.0
TRUNCATE_Z = 2.5
#: Bounds of one patient's effector half-life (days). Assumed: no human evidence of
#: sub-day or multi-month half-lives of unmodified CIK (clinical S121: detectable <= 14 d;
#: clinical_more M15: CAR-modified CIK persist > 2 years only with antigen); the lower bound
#: also keeps the effector decay resolved by the patient model's time step.
HALF_LIFE_BOUNDS = (1.0, 60.0)


@dataclass(frozen=True)
class EffectParameter:
    """A calibrated parameter: reference value, unit, range (the prior), source."""

    name: str
    value: float
    unit: str
    low: float
    high: float
    scale: str  # "log" (log-uniform prior) or "linear" (uniform)
    source: str
    description: str

    def __post_init__(self) -> None:
        if not self.low < self.high or not self.low <= self.value <= self.high:
            raise DataError(f"effect parameter {self.name}: need low < high and the value "
                            "inside [low, high]")
        if self.scale == "log" and self.low <= 0:
            raise DataError(f"effect parameter {self.name}: a log prior needs low > 0")


@dataclass(frozen=True)
class Dimension:
    """One coordinate of the calibration: its prior on the sampling scale and meaning."""

    name: str
    kind: str  # "effect", "bias" or "offset"
    prior: str  # "uniform", "loguniform" or "normal"
    a: float  # uniform: low; loguniform: log10 low; normal: mean
    b: float  # uniform: high; loguniform: log10 high; normal: SD
    unit: str
    description: str
    source: str

    def to_natural(self, x: np.ndarray | float) -> np.ndarray | float:
        """From the sampling scale (log10 for log-uniform priors) to the parameter's scale."""
        return 10.0 ** np.asarray(x) if self.prior == "loguniform" else x

    def to_sampling(self, x: np.ndarray | float) -> np.ndarray | float:
        return np.log10(np.asarray(x)) if self.prior == "loguniform" else x

    def rv(self) -> stats.rv_continuous:
        """The prior as a frozen scipy distribution on the sampling scale."""
        if self.prior == "normal":
            return stats.norm(self.a, self.b)
        return stats.uniform(self.a, self.b - self.a)

    def interval(self, level: float = 0.9) -> tuple[float, float]:
        """The prior's central interval on the natural scale."""
        lo, hi = self.rv().interval(level)
        return float(self.to_natural(lo)), float(self.to_natural(hi))

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "prior": self.prior, "a": self.a,
                "b": self.b, "unit": self.unit, "description": self.description,
                "source": self.source}


def effect_parameters() -> dict[str, EffectParameter]:
    """The effect parameters, with ranges derived from the patient model's declarations."""
    from ciksim.models.patient import patient_model

    pars = patient_model().parameter_by_name
    for name in ("f_marrow", "s_vivo", "t_half_E"):
        if name not in pars:
            raise DataError(f"the patient model has no parameter {name!r}: the evidence "
                            "layer's mapping (ciksim.evidence.effect) needs updating")
    f, s, t = pars["f_marrow"], pars["s_vivo"], pars["t_half_E"]
    return {
        "potency": EffectParameter(
            "potency", f.value * s.value, "1", f.low * s.low, f.high * s.high, "log",
            "derived: f_marrow x s_vivo over the product of their declared ranges "
            f"(f_marrow: {f.source}; s_vivo: {s.source})",
            "marrow kill rate per infused cell relative to one effector at well activity "
            "(f_marrow x s_vivo)"),
        "persistence_sd": EffectParameter(
            "persistence_sd", 1.0, "1", 0.0, 1.6, "linear",
            "clinical_more M29 Stein 2019 (cellular-kinetics NLME: between-patient variance "
            "0.4-2.4, i.e. log-SD 0.63-1.55; CAR-T proxy); range widened to 0-1.6",
            "between-patient log-SD of the infused effectors' half-life"),
        "t_half_E": EffectParameter(
            "t_half_E", t.value, t.unit, t.low, t.high, "log", t.source,
            "median half-life of infused effectors"),
    }


DEFAULT_EFFECTS = ("potency", "persistence_sd")


def dimensions(evidence: Evidence, effects: Sequence[str] = DEFAULT_EFFECTS,
               priors: Mapping[str, tuple[float, float]] | None = None) -> list[Dimension]:
    """The calibration's coordinates: effect parameters, then each study's bias terms.

    ``priors`` replaces an effect parameter's range ``(low, high)`` (the prior is still
    log-uniform or uniform as declared) or a bias term's normal ``(mean, sd)``.
    """
    table = effect_parameters()
    priors = dict(priors or {})
    unknown = [e for e in effects if e not in table]
    if unknown or not effects:
        raise DataError(f"effects: unknown {', '.join(unknown) or '(none given)'}; use some "
                        f"of {', '.join(table)}")
    dims = []
    for name in effects:
        p = table[name]
        lo, hi = priors.pop(name, (p.low, p.high))
        if not lo < hi or (p.scale == "log" and lo <= 0):
            raise DataError(f"prior for {name}: need 0 < low < high for a log prior "
                            f"(low < high otherwise), got ({lo}, {hi})")
        dims.append(range_dimension(name, lo, hi, p.scale == "log", p.unit, p.description,
                                    p.source))
    return with_study_terms(dims, [study_terms(s) for s in evidence.used], priors)


def range_dimension(name: str, low: float, high: float, log: bool, unit: str,
                    description: str, source: str) -> Dimension:
    """An effect coordinate with a log-uniform (``log``) or uniform prior on (low, high)."""
    if log:
        return Dimension(name, "effect", "loguniform", math.log10(low), math.log10(high),
                         unit, description, source)
    return Dimension(name, "effect", "uniform", low, high, unit, description, source)


def with_study_terms(dims: list[Dimension], terms: Sequence[Sequence[Dimension]],
                     priors: dict[str, tuple[float, float]]) -> list[Dimension]:
    """``dims`` followed by the studies' bias and offset ``terms``, each with the normal
    ``(mean, sd)`` taken from ``priors`` where given; every prior must have been used."""
    for dim in (d for study in terms for d in study):
        mean, sd = priors.pop(dim.name, (dim.a, dim.b))
        if sd <= 0:
            raise DataError(f"prior for {dim.name}: the SD must be > 0, got {sd}")
        dims.append(dataclasses.replace(dim, a=mean, b=sd))
    if priors:
        raise DataError(f"priors given for unknown coordinate(s) {', '.join(priors)}; the "
                        f"calibration has {', '.join(d.name for d in dims)}")
    return dims


def study_terms(study: Study) -> list[Dimension]:
    """The bias/offset coordinates a study brings (none for a randomised study's bias)."""
    out = []
    if study.bias_term:
        sd = BIAS_SD[study.design]
        what = ("log hazard ratio" if study.endpoint.kind == "hazard_ratio"
                else "log-odds of the single arm" if len(study.arms) == 1
                else "log-odds of the treated arm")
        out.append(Dimension(
            f"bias:{study.id}", "bias", "normal", 0.0, sd, "1",
            f"design bias of {study.id} ({study.design.value}): shift of the {what}",
            f"assumed: informative prior for {study.design.value} designs, SD {sd} on the "
            "log scale (widths grow as the comparison weakens)"))
    if len(study.arms) == 2 and study.endpoint.kind != "hazard_ratio":
        out.append(Dimension(
            f"offset:{study.id}", "offset", "normal", 0.0, OFFSET_SD, "1",
            f"population of {study.id} vs its model scenario: shift of both arms' log-odds",
            f"assumed: SD {OFFSET_SD} (the population's odds within ×/÷ 5 of the scenario's, "
            "90%)"))
    return out


def persistence_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform deviates for standard normal draws truncated at ±TRUNCATE_Z (the truncation
    is finished per draw in :func:`model_parameters`, where the bounds are known)."""
    return rng.random(n)


def _bounded_normal(u: np.ndarray, low: float, high: float) -> np.ndarray:
    """Inverse-CDF standard normal draws from uniforms ``u``, truncated to [low, high]."""
    a, b = stats.norm.cdf(low), stats.norm.cdf(high)
    return stats.norm.ppf(a + (b - a) * u)


def model_parameters(theta: Mapping[str, float], u: np.ndarray) -> dict[str, np.ndarray]:
    """Patient-model parameters for patients with persistence uniforms ``u`` (one each, in
    (0, 1)) under effect values ``theta`` (natural scale; missing effects take their
    reference). A patient's half-life is the median × exp(ω z), z standard normal truncated
    at ±TRUNCATE_Z and to half-lives within :data:`HALF_LIFE_BOUNDS`."""
    from ciksim.models.patient import patient_model

    pars = patient_model().parameter_by_name
    table = effect_parameters()
    f, s = pars["f_marrow"], pars["s_vivo"]
    potency = float(theta.get("potency", table["potency"].value))
    lo, hi = f.low * s.low, f.high * s.high
    q = (math.log(potency) - math.log(lo)) / (math.log(hi) - math.log(lo))
    f_m = f.low * (f.high / f.low) ** q
    s_v = s.low * (s.high / s.low) ** q
    t_half = float(theta.get("t_half_E", pars["t_half_E"].value))
    omega = float(theta.get("persistence_sd", 0.0))
    n = u.shape[0]
    if omega > 0:
        lo_t, hi_t = HALF_LIFE_BOUNDS
        z = _bounded_normal(u, max(-TRUNCATE_Z, math.log(lo_t / t_half) / omega),
                            min(TRUNCATE_Z, math.log(hi_t / t_half) / omega))
        halves = t_half * np.exp(omega * z)
    else:
        halves = np.full(n, t_half)
    return {"f_marrow": np.full(n, f_m), "s_vivo": np.full(n, s_v), "t_half_E": halves}


def sampling_name(j: int) -> str:
    """pyabc's name of the ``j``-th calibration coordinate (on its sampling scale)."""
    return f"x{j:02d}"


def proposal_to_natural(dims: Sequence[Dimension], pars: Mapping[str, float]) -> dict[str, float]:
    """A proposal from pyabc's sampling scale (coordinates :func:`sampling_name`) to the
    coordinates' natural scale, by name."""
    return {d.name: float(d.to_natural(pars[sampling_name(j)])) for j, d in enumerate(dims)}
