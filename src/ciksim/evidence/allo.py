"""Evidence after allogeneic stem-cell transplantation: DLI and donor-CIK studies.

The allo model's alloreactivity (:mod:`ciksim.models.allo`) is calibrated here with the same
machinery as the in vivo CIK effect (:func:`ciksim.evidence.calibrate` with ``model =
"allo"``). An allo evidence file (shipped: ``data/evidence/allo.toml``) is an evidence file
whose studies are :class:`AlloStudy` records: the population is an allo scenario (donor,
conditioning, parameter overrides), each arm gives donor cells (``dli`` or ``cik``) by CD3+
cells/kg on a schedule (a bulk dose, equal repeated doses or an explicit escalating list),
starting on a fixed day after the stem-cell infusion or when a trigger fires (pre-emptive,
at overt relapse), and the endpoint is counted from the first infusion:

* ``gvhd``: GvHD (acute of any grade, or chronic) beginning or worsening to grade II-IV
  within ``at_months``; ``agvhd``: acute GvHD of any grade (the same, without chronic).
  Patients alive and without grade II-IV or chronic GvHD before the first infusion are
  eligible (donor cells are withheld in significant GvHD; a resolved grade I is no bar);
* ``cr``: back below the relapse threshold (``remission_day``) within ``at_months``, among
  patients in overt relapse at the first infusion;
* ``os``: alive ``at_months`` after the first infusion.

Every endpoint is computed from the columns of
:func:`ciksim.analysis.allo.simulate_allo_cohort` (days after the stem-cell infusion). An
arm's patients are the first ``n`` eligible of ``n × screen`` simulated transplant
recipients (``screen`` > 1 where few recipients are eligible, e.g. those who relapse).

The calibrated coordinates are allo-model parameters (priors: their declared ranges,
log-uniform where the range is positive and spans more than a factor 10) plus the bias
terms of :mod:`ciksim.evidence.effect` (non-randomised designs) and a population offset for
studies with two or more arms. A calibrated value is the parameter's median in the reference
scenario (``allo-aml-cr``: sibling donor, myeloablative conditioning); a study whose donor
or conditioning declares another median keeps its declared ratio to the reference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator
from scipy.special import expit, logit

from ciksim.errors import CikError, DataError
from ciksim.evidence.effect import (
    BIAS_SD,
    OFFSET_SD,
    Dimension,
    range_dimension,
    with_study_terms,
)
from ciksim.evidence.simulate import DAYS_PER_MONTH, Observed
from ciksim.evidence.studies import (
    STRICT,
    Design,
    Evidence,
    Positive,
    Setting,
    Study,
    raise_validation,
)

#: Endpoints the allo model computes, counted from each patient's first infusion.
ALLO_ENDPOINTS = {
    "gvhd": "patients with GvHD (acute of any grade, or chronic) beginning or reaching grade "
            "II-IV within `at_months` of the first infusion, among those alive and without "
            "grade II-IV or chronic GvHD when it is given",
    "agvhd": "patients with acute GvHD of any grade beginning or reaching grade II-IV within "
             "`at_months` of the first infusion, among those alive and without grade II-IV "
             "or chronic GvHD when it is given",
    "cr": "patients back below the relapse threshold within `at_months` of the first "
          "infusion, among those in overt relapse when it is given",
    "os": "patients alive `at_months` after the first infusion",
}
#: Calibrated by default: the alloreactive precursor share of T cells (the DLI dose-GvHD
#: level, A1), the host-tissue damage rate (GvHD per activated cell, A1-A2), the CIK
#: precursor share relative to T cells (GvHD and GvL of CIK, A3-A4), the tissue damage per
#: activated CIK cell (A3 only: confounded with the precursor share there, told apart by
#: A4's GvL) and the GvL killing rate (A4).
DEFAULT_PARAMETERS = ("f_allo_t", "k_dmg", "cik_allo_rel", "cik_tox_rel", "k_gvl")
REFERENCE_SCENARIO = "allo-aml-cr"
SHIPPED_EVIDENCE = ("evidence", "allo.toml")
#: The summary of a simulated arm without eligible patients (e.g. nobody relapses, or all
#: have severe GvHD before the infusion): an impossible proportion, far from every observed
#: one (many standard errors) but finite, so the tolerance schedule keeps working.
NO_PATIENTS = -1.0
MAX_SIMULATED = 1 << 13  # simulated recipients per arm and draw (n × screen)
# Bit fields of a recipient's stream index: draw key | study (7 bits) | arm (2) | recipient (13).
_ARM_SHIFT = 13
_STUDY_SHIFT = _ARM_SHIFT + 2
_KEY_SHIFT = _STUDY_SHIFT + 7
MAX_STUDIES = 1 << (_KEY_SHIFT - _STUDY_SHIFT)


def recipient_indices(key: int, study: int, arm: int, n: int) -> np.ndarray:
    """Stream indices of the ``n`` simulated recipients of ``arm`` of ``study`` for draw
    ``key``: disjoint for every (key, study, arm), so no two arms share a recipient."""
    if not (0 <= study < MAX_STUDIES and 0 <= arm < 1 << (_STUDY_SHIFT - _ARM_SHIFT)
            and 0 <= n <= MAX_SIMULATED):
        raise DataError(f"allo evidence: at most {MAX_STUDIES} studies, 4 arms and "
                        f"{MAX_SIMULATED} simulated recipients per arm; got study {study}, "
                        f"arm {arm}, {n} recipients")
    return ((int(key) << _KEY_SHIFT) + (study << _STUDY_SHIFT) + (arm << _ARM_SHIFT)
            + np.arange(n, dtype=np.int64))


class AlloPopulation(BaseModel):
    """An allo scenario with its donor and conditioning options and parameter medians."""

    model_config = STRICT
    scenario: str = REFERENCE_SCENARIO
    donor: str | None = None
    conditioning: str | None = None
    parameters: dict[str, float] = Field(default_factory=dict)


class AlloEndpoint(BaseModel):
    """What was counted, within ``at_months`` of each patient's first infusion."""

    model_config = STRICT
    kind: str
    at_months: Positive

    @model_validator(mode="after")
    def _known(self) -> AlloEndpoint:
        if self.kind not in ALLO_ENDPOINTS:
            raise ValueError(f"kind {self.kind!r} is not an endpoint the allo model can "
                             f"compute; use one of {', '.join(ALLO_ENDPOINTS)}")
        return self


class AlloTrigger(BaseModel):
    """When an arm's first infusion is given: the first monitoring day on which ``watch``
    (a derived quantity of the allo model, e.g. ``mrd`` or ``blast_fraction``) is at or
    above ``above`` (or at or below ``below``); ``monitor`` as in a protocol's
    ``[[triggers]]`` (``{first, every, last}`` or ``{days = [...]}``, days after the
    stem-cell infusion). The arm's doses follow at the trigger day plus ``k ×
    interval_days``."""

    model_config = STRICT
    name: str = Field(min_length=1, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    watch: str = Field(min_length=1)
    above: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    below: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    monitor: dict[str, Any]

    @model_validator(mode="after")
    def _one(self) -> AlloTrigger:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"give exactly one of above or below (the threshold of "
                             f"{self.watch!r})")
        if self.name in ("relapse", "remission", "death", "nrm", "gvhd_any", "agvhd",
                         "cgvhd"):
            raise ValueError(f"name {self.name!r} would clash with the cohort column "
                             f"{self.name}_day; use e.g. 'at-relapse'")
        return self

    @property
    def last_day(self) -> float:
        """The last monitoring day (the latest a first infusion can be)."""
        days = self.monitor.get("days")
        if isinstance(days, list) and days:
            return float(max(days))
        last = self.monitor.get("last")
        return float(last) if isinstance(last, (int, float)) else 0.0

    def as_protocol(self, cells: str, doses: Sequence[float], interval: float
                    ) -> dict[str, Any]:
        """The ``[[triggers]]`` table giving ``doses`` of ``cells``."""
        side = "above" if self.above is not None else "below"
        return {"name": self.name, "watch": self.watch, side: getattr(self, side),
                "monitor": dict(self.monitor),
                "doses": [{"offset": k * interval, "dose": cells, "amount": float(d)}
                          for k, d in enumerate(doses)]}


class AlloArm(BaseModel):
    """One arm: donor cells (``dli`` or ``cik``, CD3+ cells/kg) on a schedule starting on
    ``first_day`` or when ``trigger`` fires, ``n`` patients, ``events`` observed."""

    model_config = STRICT
    name: str = Field(min_length=1)
    n: int = Field(ge=1)
    events: int = Field(ge=0)
    cells: Literal["dli", "cik"]
    dose_per_kg: Positive | None = None
    infusions: int | None = Field(default=None, ge=1)
    doses_per_kg: tuple[Positive, ...] | None = Field(default=None, min_length=1)
    interval_days: Positive | None = None
    first_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    trigger: AlloTrigger | None = None
    screen: int = Field(default=1, ge=1)

    @property
    def doses(self) -> tuple[float, ...]:
        """CD3+ cells/kg of each infusion, in order."""
        if self.doses_per_kg is not None:
            return self.doses_per_kg
        return (float(self.dose_per_kg),) * int(self.infusions)

    @model_validator(mode="after")
    def _consistent(self) -> AlloArm:
        if (self.doses_per_kg is None) == (self.dose_per_kg is None):
            raise ValueError("give dose_per_kg with infusions (equal doses) or doses_per_kg "
                             "= [...] (one CD3+ dose per infusion, e.g. escalating)")
        if self.dose_per_kg is not None and self.infusions is None:
            raise ValueError("dose_per_kg needs infusions (the number of equal doses)")
        if self.doses_per_kg is not None and self.infusions is not None:
            raise ValueError("infusions goes with dose_per_kg; doses_per_kg lists every "
                             "infusion already")
        if len(self.doses) > 1 and self.interval_days is None:
            raise ValueError("more than one infusion needs interval_days (days between them)")
        if (self.first_day is None) == (self.trigger is None):
            raise ValueError("give exactly one of first_day (days after the stem-cell "
                             "infusion) or trigger (monitoring that starts the infusions)")
        if self.events > self.n:
            raise ValueError(f"events = {self.events} is above n = {self.n}; give the "
                             "number of patients with the endpoint (0..n)")
        if self.n * self.screen > MAX_SIMULATED:
            raise ValueError(f"n x screen = {self.n * self.screen} simulated recipients; at "
                             f"most {MAX_SIMULATED}")
        return self


class AlloStudy(Study):
    """A study after allo-HSCT (setting ``donor-after-allo-hsct``): the study record of
    :class:`~ciksim.evidence.studies.Study` with an allo population, allo endpoints and
    up to three arms of donor cells (e.g. dose groups). ``prediction`` marks a record kept
    out of the fit whose result the A-target checks compute as a prediction."""

    population: AlloPopulation = Field(default_factory=AlloPopulation)
    endpoint: AlloEndpoint
    arms: tuple[AlloArm, ...] = Field(min_length=1, max_length=3)
    prediction: bool = False

    @model_validator(mode="after")
    def _shape(self) -> AlloStudy:
        if self.setting is not Setting.donor_after_allo_hsct:
            raise ValueError("an allo study has setting = 'donor-after-allo-hsct'")
        if not self.use and not self.reason:
            raise ValueError("a study kept out of the fit (use = false) needs a reason")
        if self.prediction and self.use:
            raise ValueError("prediction = true marks a record kept out of the fit (use = "
                             "false) whose result the model must predict")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must differ, got {names}")
        several = len(self.arms) > 1
        if self.design is Design.single_arm and several:
            raise ValueError("design single-arm takes one arm; for more give the design of "
                             "the comparison (randomised, matched-controls, ...)")
        if self.design not in (Design.single_arm, Design.historical_controls) and not several:
            raise ValueError(f"design {self.design.value} compares arms; give them, or use "
                             "single-arm / historical-controls")
        return self


class AlloEvidence(Evidence):
    """A versioned set of allo studies."""

    studies: tuple[AlloStudy, ...] = Field(min_length=1, max_length=MAX_STUDIES)


def parse_allo_evidence(data: Mapping[str, Any], *, origin: str = "allo evidence"
                        ) -> AlloEvidence:
    """Validate parsed TOML as allo evidence, and the used studies against the allo model."""
    try:
        evidence = AlloEvidence.model_validate(dict(data))
    except ValidationError as exc:
        raise_validation(exc, data, origin)
    for study in evidence.used:
        _scenario(study, origin)
    return evidence


def load_allo_evidence(path: str | Path | None = None) -> AlloEvidence:
    """The shipped allo evidence (``path`` None) or an allo evidence TOML file."""
    from ciksim.schemas import parse_toml, read_text

    if path is None:
        text = (resources.files("ciksim.data").joinpath(*SHIPPED_EVIDENCE)).read_text("utf-8")
        origin = "shipped allo evidence"
    else:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"evidence file {str(p)!r} does not exist; give a TOML file or "
                            "omit --evidence for the shipped allo evidence")
        text, origin = read_text(p, what="evidence file"), str(p)
    return parse_allo_evidence(parse_toml(text, origin=origin), origin=origin)


def _schedule(arm: AlloArm) -> dict[str, list[dict[str, Any]]]:
    """The arm's infusions as scenario ``events`` (fixed days) or ``triggers``."""
    step = float(arm.interval_days or 0.0)
    if arm.trigger is not None:
        return {"events": [], "triggers": [arm.trigger.as_protocol(arm.cells, arm.doses, step)]}
    return {"events": [{"day": float(arm.first_day) + k * step, "action": "dose",
                        "dose": arm.cells, "amount": float(d)}
                       for k, d in enumerate(arm.doses)]}


def _scenario(study: AlloStudy, origin: str, arm: AlloArm | None = None) -> Any:
    """The study's allo scenario (with ``arm``'s infusions), errors naming the field."""
    from ciksim.models.allo import AlloScenario, allo_model

    where = f"{origin}: study {study.id!r}"
    pop = study.population
    names = allo_model().parameter_by_name
    for key, value in pop.parameters.items():
        if key not in names:
            raise DataError(f"{where}: field population.parameters.{key}: not an allo-model "
                            "parameter; see docs/models/allo.md")
        p = names[key]
        if not p.low <= value <= p.high:
            raise DataError(f"{where}: field population.parameters.{key}: {value:g} is "
                            f"outside its declared range [{p.low:g}, {p.high:g}]")
    arms = [arm] if arm is not None else list(study.arms)
    scen = None
    for i, a in enumerate(arms):
        try:
            scen = AlloScenario.load(pop.scenario, donor=pop.donor,
                                     conditioning=pop.conditioning, **_schedule(a))
        except CikError as exc:
            text = str(exc)
            field = f"arms[{i}]" if "events" in text or "trigger" in text else "population"
            raise DataError(f"{where}: field {field}: {exc}") from None
    if pop.parameters:
        scen = dataclasses.replace(scen, parameters={**scen.parameters, **pop.parameters})
    return scen


@dataclass(frozen=True)
class PreparedAlloArm:
    """An arm ready to simulate: its scenario (infusions as protocol events), the first
    infusion day and the simulated follow-up."""

    name: str
    n: int
    screen: int
    scenario: Any  # models.allo.AlloScenario
    start: float | str  # the first infusion day, or the cohort column of the trigger day
    horizon: float


@dataclass(frozen=True)
class PreparedAlloStudy:
    study: AlloStudy
    arms: tuple[PreparedAlloArm, ...]
    window: float
    observed: tuple[Observed, ...]


def _proportion(k: int, n: int) -> tuple[float, float]:
    """Observed proportion and SE with a half-count, as :mod:`ciksim.evidence.simulate`."""
    pt = (k + 0.5) / (n + 1)
    return pt, math.sqrt(pt * (1 - pt) / n)


def prepare(evidence: AlloEvidence) -> tuple[PreparedAlloStudy, ...]:
    """Every used study ready to simulate, with its observed summaries."""
    return prepare_studies(evidence.used)


def prepare_studies(studies: Sequence[AlloStudy]) -> tuple[PreparedAlloStudy, ...]:
    """``studies`` (used in the fit or not, e.g. a prediction check) ready to simulate."""
    out = []
    for study in studies:
        window = study.endpoint.at_months * DAYS_PER_MONTH
        arms = []
        for arm in study.arms:
            scen = _scenario(study, "allo evidence", arm)
            if arm.trigger is not None:
                start: float | str = f"{arm.trigger.name}_day"
                latest = arm.trigger.last_day
            else:
                start = latest = float(arm.first_day)
            arms.append(PreparedAlloArm(arm.name, arm.n, arm.screen, scen, start,
                                        latest + window + 1.0))
        observed = []
        for arm in study.arms:
            v, se = _proportion(arm.events, arm.n)
            observed.append(Observed(f"{study.id}/{arm.name}", v, se))
        out.append(PreparedAlloStudy(study, tuple(arms), window, tuple(observed)))
    return tuple(out)


def _column(table: Any, name: str) -> np.ndarray:
    if name not in table:
        raise DataError(f"the allo cohort table has no column {name!r} (needed by the allo "
                        "evidence endpoints); update ciksim.analysis.allo")
    return table[name].to_numpy(float)


def arm_outcome(kind: str, table: Any, start: np.ndarray | float, window: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per simulated recipient: eligible for the arm, and the endpoint (see the module
    docstring), from the cohort table's columns and each recipient's first infusion day."""
    start = np.broadcast_to(np.asarray(start, float), (len(table),))
    death = _column(table, "death_day")
    with np.errstate(invalid="ignore"):
        alive = ~(death <= start)
        given = np.isfinite(start) & alive
        if kind in ("gvhd", "agvhd"):
            severe = np.fmin(_column(table, "agvhd_day"), _column(table, "cgvhd_day"))
            eligible = given & ~(severe <= start)
            onsets = [_column(table, "gvhd_any_day"), _column(table, "agvhd_day")]
            if kind == "gvhd":
                onsets.append(_column(table, "cgvhd_day"))
            hit = np.zeros(len(table), bool)
            for day in onsets:
                hit |= (day > start) & (day <= start + window)
        elif kind == "cr":
            eligible = given & (_column(table, "relapse_day") <= start)
            back = _column(table, "remission_day")
            hit = (back > start) & (back <= start + window)
        else:
            eligible = given
            hit = ~(death <= start + window)
    return eligible, hit & eligible


def _reference_medians() -> dict[str, float]:
    from ciksim.models.allo import AlloScenario

    return dict(AlloScenario.load(REFERENCE_SCENARIO).parameters)


def calibrated_medians(scenario: Any, theta: Mapping[str, float], ref: Mapping[str, float]
                       ) -> dict[str, float]:
    """The scenario's medians under calibrated reference values ``theta`` (a scenario
    that declares another median than the reference keeps its ratio; clipped to the
    declared range)."""
    from ciksim.models.allo import allo_model

    pars = allo_model().parameter_by_name
    out = {}
    for name, value in theta.items():
        if name not in pars:
            continue  # bias and offset terms
        p = pars[name]
        base = float(scenario.parameters.get(name, p.value))
        reference = float(ref.get(name, p.value))
        v = float(value) * base / reference if reference > 0 else float(value)
        out[name] = min(max(v, p.low), p.high)
    return out


def simulate_batch(prepared: Sequence[PreparedAlloStudy],
                   thetas: Sequence[Mapping[str, float]], keys: Sequence[int], seed: int
                   ) -> list[dict[str, dict[str, tuple[int, int]]]]:
    """Simulate every study for each draw ``thetas[i]`` (natural scale) with key
    ``keys[i]``: per draw, ``{study id: {arm: (patients with the endpoint, patients)}}``.
    One cohort simulation per arm for the whole batch; recipient ``j`` of draw ``i`` has the
    random stream (seed, keys[i], study, arm, j), so a draw's result does not depend on
    the batch."""
    from ciksim.analysis.allo import simulate_allo_cohort

    if len(thetas) != len(keys):
        raise DataError("thetas and keys must have the same length")
    out: list[dict[str, Any]] = [{} for _ in thetas]
    if not thetas:
        return out
    ref = _reference_medians()
    for s, ps in enumerate(prepared):
        for a, arm in enumerate(ps.arms):
            m = arm.n * arm.screen
            idx = np.concatenate([recipient_indices(k, s, a, m) for k in keys])
            per_draw = [calibrated_medians(arm.scenario, th, ref) for th in thetas]
            arrays = {name: np.repeat([d[name] for d in per_draw], m) for name in per_draw[0]}
            scen = dataclasses.replace(arm.scenario,
                                       parameters={**arm.scenario.parameters, **arrays})
            cohort = simulate_allo_cohort(scen, len(thetas) * m, int(seed),
                                          horizon_days=arm.horizon, indices=idx)
            start = _column(cohort.table, arm.start) if isinstance(arm.start, str) \
                else arm.start
            eligible, hit = arm_outcome(ps.study.endpoint.kind, cohort.table, start,
                                        ps.window)
            for i in range(len(thetas)):
                rows = np.flatnonzero(eligible[i * m:(i + 1) * m])[:arm.n] + i * m
                out[i].setdefault(ps.study.id, {})[arm.name] = (int(hit[rows].sum()),
                                                                int(rows.size))
    return out


def _shift(k: int, m: int, delta: float) -> float:
    """A simulated proportion (half-count, as observed ones) moved by ``delta`` on the
    log-odds scale."""
    return float(expit(logit((k + 0.5) / (m + 1)) + delta))


def summaries(prepared: Sequence[PreparedAlloStudy], raw: Mapping[str, Any],
              theta: Mapping[str, float], *, bias: bool = True) -> dict[str, float]:
    """Simulated summaries of one draw with its bias and offset terms (``bias`` False:
    the model's own prediction); keys match the observed summaries."""
    out = {}
    for ps in prepared:
        sid = ps.study.id
        b = float(theta.get(f"bias:{sid}", 0.0)) if bias else 0.0
        off = float(theta.get(f"offset:{sid}", 0.0)) if bias else 0.0
        for j, arm in enumerate(ps.arms):
            k, m = raw[sid][arm.name]
            out[f"{sid}/{arm.name}"] = _shift(k, m, off + (b if j == 0 else 0.0)) if m \
                else NO_PATIENTS
    return out


def natural_thetas(dims: Sequence[Dimension], thetas: Sequence[Mapping[str, float]]
                   ) -> list[dict[str, float]]:
    """Proposals from pyabc's sampling scale (coordinates ``x00``, ``x01``, ...) to the
    parameters' natural scale, by name."""
    return [{d.name: float(d.to_natural(th[f"x{j:02d}"])) for j, d in enumerate(dims)}
            for th in thetas]


def simulate_chunk(payload: tuple[tuple[PreparedAlloStudy, ...], list[Dimension], int],
                   thetas: Sequence[Mapping[str, float]], keys: Sequence[int]
                   ) -> list[dict[str, float]]:
    """Summaries of proposals on the sampling scale (a worker's unit of work)."""
    prepared, dims, seed = payload
    natural = natural_thetas(dims, thetas)
    raw = simulate_batch(prepared, natural, keys, seed)
    return [summaries(prepared, r, th) for r, th in zip(raw, natural, strict=True)]


def allo_study_terms(study: AlloStudy) -> list[Dimension]:
    """Bias (non-randomised designs: the first arm's log-odds, or the single arm's) and,
    for two or more arms, a population offset (every arm's log-odds), with the priors of
    :mod:`ciksim.evidence.effect`."""
    out = []
    if study.bias_term:
        sd = BIAS_SD[study.design]
        what = "log-odds of the single arm" if len(study.arms) == 1 else \
            f"log-odds of arm {study.arms[0].name} against the others"
        out.append(Dimension(
            f"bias:{study.id}", "bias", "normal", 0.0, sd, "1",
            f"design bias of {study.id} ({study.design.value}): shift of the {what}",
            f"assumed: informative prior for {study.design.value} designs, SD {sd} on the "
            "log scale (widths grow as the comparison weakens)"))
    if len(study.arms) > 1:
        out.append(Dimension(
            f"offset:{study.id}", "offset", "normal", 0.0, OFFSET_SD, "1",
            f"population of {study.id} vs its model scenario: shift of every arm's log-odds",
            f"assumed: SD {OFFSET_SD} (the population's odds within ×/÷ 5 of the scenario's, "
            "90%)"))
    return out


def allo_dimensions(evidence: AlloEvidence, names: Sequence[str] | None = None,
                    priors: Mapping[str, tuple[float, float]] | None = None
                    ) -> list[Dimension]:
    """The calibration's coordinates: allo parameters (``names``; default
    :data:`DEFAULT_PARAMETERS`), then each used study's bias and offset terms. Priors are
    the declared ranges (log-uniform where positive and wider than a factor 10) unless
    ``priors`` gives ``(low, high)`` (or a bias term's ``(mean, sd)``)."""
    from ciksim.models.allo import allo_model

    names = DEFAULT_PARAMETERS if names is None else tuple(names)
    declared = allo_model().parameter_by_name
    priors = dict(priors or {})
    unknown = [n for n in names if n not in declared]
    if unknown or not names:
        raise DataError(f"parameters: unknown {', '.join(unknown) or '(none given)'}; give "
                        "allo-model parameters (docs/models/allo.md), e.g. "
                        f"{', '.join(DEFAULT_PARAMETERS)}")
    dims = []
    for name in names:
        p = declared[name]
        lo, hi = priors.pop(name, (p.low, p.high))
        if not lo < hi or not p.low <= lo or not hi <= p.high:
            raise DataError(f"prior for {name}: need {p.low:g} <= low < high <= {p.high:g} "
                            f"(its declared range), got ({lo}, {hi})")
        dims.append(range_dimension(name, lo, hi, lo > 0 and hi / lo > 10, p.unit,
                                    p.description, p.source))
    return with_study_terms(dims, [allo_study_terms(s) for s in evidence.used], priors)


def allo_model_hash() -> str:
    """Fingerprint of the allo model and its reference scenario: a posterior made on
    another version must be regenerated."""
    from ciksim.models.allo import AlloScenario, allo_model

    m = allo_model()
    scen = AlloScenario.load(REFERENCE_SCENARIO)
    text = json.dumps({
        "parameters": [(p.name, p.value, p.low, p.high, p.variability) for p in m.parameters],
        "processes": [(p.name, p.rate) for p in m.processes],
        "assignments": [(a.name, a.expr) for a in m.assignments],
        "doses": [(d.name, sorted(d.adds.items())) for d in m.doses],
        "scenario": [sorted(scen.parameters.items()), sorted(scen.variability.items()),
                     scen.engraftment_day, scen.relapse_threshold],
    }, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def allo_problem() -> Any:
    """The ``allo`` calibration problem for :func:`ciksim.evidence.calibrate`."""
    from ciksim.evidence.calibration import Problem

    return Problem("allo", load_allo_evidence, allo_dimensions, prepare, simulate_chunk,
                   allo_model_hash)
