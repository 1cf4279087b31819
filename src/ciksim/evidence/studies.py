"""Clinical evidence as data: studies, their arms, endpoints and designs (pydantic v2).

An evidence file (TOML) holds a ``version`` and a list of ``[[studies]]``. Each study says
where it comes from (``source``), its clinical ``setting``, its ``design`` (randomised,
matched controls, historical controls, patient choice, single arm), the patient
``population`` (a patient scenario plus optional parameter overrides), its ``endpoint`` and
its ``arms`` (product, dose, schedule, n, observed count). Everything is checked here,
before any simulation: a bad record raises one :class:`~ciksim.errors.DataError` naming the
study, the field and the fix.

A user's own cohort (CSV ``patient, arm, time_months, event``) becomes a study with a
survival endpoint through :func:`cohort_study`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ciksim.errors import CikError, DataError

#: Endpoints the patient model can compute, with what the observed value means.
ENDPOINTS = {
    "mrd_negative": "patients MRD-negative (blast fraction < 1e-4) at `at_months`",
    "cr": "patients in complete remission (blast fraction < 5%) at `at_months`",
    "relapse": "patients with haematological relapse by `at_months`",
    "hazard_ratio": "hazard ratio of relapse, first arm vs second, over `at_months`",
    "survival": "relapse times per patient (a cohort): Kaplan-Meier at landmark months",
}
MRD_THRESHOLD = 1e-4
CR_THRESHOLD = 0.05


class Setting(StrEnum):
    """Clinical setting of a study."""

    autologous_after_chemotherapy = "autologous-after-chemotherapy"
    mrd_positive_in_cr = "mrd-positive-in-cr"
    donor_after_chemotherapy = "donor-after-chemotherapy"
    donor_after_allo_hsct = "donor-after-allo-hsct"


class Design(StrEnum):
    """How the comparison was made; anything but ``randomised`` gets a bias term."""

    randomised = "randomised"
    matched_controls = "matched-controls"
    historical_controls = "historical-controls"
    patient_choice = "patient-choice"
    single_arm = "single-arm"


STRICT = ConfigDict(extra="forbid", frozen=True)
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class Composition(BaseModel):
    """Shares of the infused cells (of all cells; the rest kill nothing)."""

    model_config = STRICT
    cik: Fraction
    t: Fraction
    nk: Fraction

    @model_validator(mode="after")
    def _sum(self) -> Composition:
        if self.cik + self.t + self.nk > 1 + 1e-9:
            raise ValueError("cik + t + nk must be <= 1 (shares of all infused cells)")
        if self.cik + self.t <= 0:
            raise ValueError("the product needs CD3+ cells (cik + t > 0) to be dosed by")
        return self


class Product(BaseModel):
    """The infused product: a culture protocol's day-``days`` harvest, or a composition."""

    model_config = STRICT
    culture_protocol: str | None = None
    days: Positive = 21.0
    composition: Composition | None = None
    origin: Literal["autologous", "donor"] = "autologous"

    @model_validator(mode="after")
    def _one(self) -> Product:
        if (self.culture_protocol is None) == (self.composition is None):
            raise ValueError("give exactly one of culture_protocol (e.g. 'cik-gmp') or "
                             "composition = {cik, t, nk}")
        return self


class Arm(BaseModel):
    """One arm: ``n`` patients, ``events`` observed, CIK schedule (none for controls)."""

    model_config = STRICT
    name: str = Field(min_length=1)
    n: int = Field(ge=1)
    events: int | None = Field(default=None, ge=0)
    product: Product | None = None
    dose_per_kg: Positive | None = None
    infusions: int | None = Field(default=None, ge=1)
    interval_days: Positive | None = None
    first_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    times_months: tuple[float, ...] | None = Field(default=None, repr=False)
    relapsed: tuple[bool, ...] | None = Field(default=None, repr=False)

    @property
    def treated(self) -> bool:
        return self.product is not None

    @model_validator(mode="after")
    def _consistent(self) -> Arm:
        schedule = (self.dose_per_kg, self.infusions, self.interval_days, self.first_day)
        if self.product is None and any(v is not None for v in schedule):
            raise ValueError("a control arm (no product) takes no dose_per_kg, infusions, "
                             "interval_days or first_day; add a product to treat it")
        if self.product is not None and any(v is None for v in schedule):
            raise ValueError("a treated arm needs dose_per_kg (CD3+ cells/kg per infusion), "
                             "infusions, interval_days and first_day (days after remission)")
        if self.events is not None and self.events > self.n:
            raise ValueError(f"events = {self.events} is above n = {self.n}; give the "
                             "number of patients with the endpoint (0..n)")
        return self


class Endpoint(BaseModel):
    """What was measured, when; ``estimate``/``ci90`` only for ``hazard_ratio``."""

    model_config = STRICT
    kind: str
    at_months: Positive
    estimate: Positive | None = None
    ci90: tuple[Positive, Positive] | None = None
    landmarks_months: tuple[Positive, ...] | None = None

    @model_validator(mode="after")
    def _known(self) -> Endpoint:
        if self.kind not in ENDPOINTS:
            raise ValueError(f"kind {self.kind!r} is not an endpoint the patient model can "
                             f"compute; use one of {', '.join(ENDPOINTS)}")
        if self.kind == "hazard_ratio":
            if self.estimate is None or self.ci90 is None:
                raise ValueError("a hazard_ratio endpoint needs estimate and ci90 = [low, high]")
            lo, hi = self.ci90
            if not lo < self.estimate < hi:
                raise ValueError(f"ci90 = [{lo}, {hi}] must contain estimate = {self.estimate}")
        elif self.estimate is not None or self.ci90 is not None:
            raise ValueError("estimate and ci90 belong to hazard_ratio endpoints; give the "
                             "observed count as each arm's events")
        return self


class Population(BaseModel):
    """A patient scenario (built-in name or TOML file) and parameter medians to override."""

    model_config = STRICT
    scenario: str = "aml-cr1"
    parameters: dict[str, float] = Field(default_factory=dict)
    start_burden: Annotated[float, Field(gt=0, le=1)] | None = None


def check_design_arms(design: Design, n_arms: int) -> None:
    """The design's rule on the number of arms (their bounds are the schema's): single-arm
    takes one, a comparison (randomised, matched or historical controls, patient choice)
    more, historical controls either (a single arm against controls outside the study)."""
    several = n_arms > 1
    if design is Design.single_arm and several:
        raise ValueError("design single-arm takes one arm; for more give the design of the "
                         "comparison (randomised, matched-controls, ...)")
    if design not in (Design.single_arm, Design.historical_controls) and not several:
        raise ValueError(f"design {design.value} compares arms; give them, or use "
                         "single-arm / historical-controls")


class Study(BaseModel):
    """One calibration study (or a record kept out of the fit with ``use = false``)."""

    model_config = STRICT
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    source: str = Field(min_length=1)
    setting: Setting
    design: Design
    population: Population = Field(default_factory=Population)
    endpoint: Endpoint
    arms: tuple[Arm, ...] = Field(min_length=1, max_length=2)
    proxy: bool = False
    use: bool = True
    reason: str = ""
    notes: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Study:
        if not self.use and not self.reason:
            raise ValueError("a study kept out of the fit (use = false) needs a reason")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must differ, got {names}")
        check_design_arms(self.design, len(self.arms))
        kind = self.endpoint.kind
        if kind == "hazard_ratio":
            if len(self.arms) != 2:
                raise ValueError("a hazard_ratio endpoint needs two arms (treated first)")
        elif kind == "survival":
            if any(a.times_months is None for a in self.arms):
                raise ValueError("a survival endpoint comes from a cohort CSV (--add-cohort)")
        else:
            missing = [a.name for a in self.arms if a.events is None]
            if missing:
                raise ValueError(f"arm(s) {', '.join(missing)}: give events, the observed "
                                 f"number of {ENDPOINTS[kind]}")
        return self

    @property
    def bias_term(self) -> bool:
        """Non-randomised comparisons get a bias term."""
        return self.design is not Design.randomised


class Evidence(BaseModel):
    """A versioned set of studies."""

    model_config = STRICT
    version: str = Field(min_length=1)
    description: str = ""
    studies: tuple[Study, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Evidence:
        ids = [s.id for s in self.studies]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"study ids must be unique; repeated: {', '.join(dup)}")
        if not any(s.use for s in self.studies):
            raise ValueError("no study is used (all have use = false)")
        return self

    @property
    def used(self) -> tuple[Study, ...]:
        return tuple(s for s in self.studies if s.use)

    def study(self, study_id: str) -> Study:
        for s in self.studies:
            if s.id == study_id:
                return s
        raise DataError(f"no study {study_id!r}; studies: {', '.join(s.id for s in self.studies)}")

    def with_study(self, study: Study) -> Evidence:
        """This evidence plus one more study (e.g. a user's cohort)."""
        return Evidence.model_validate({**self.model_dump(), "studies": (*self.studies, study)})


def _where(data: Mapping[str, Any], loc: Sequence[Any]) -> str:
    """'study X: field a.b' for a pydantic error location inside an evidence file."""
    parts = list(loc)
    prefix = ""
    if len(parts) >= 2 and parts[0] == "studies" and isinstance(parts[1], int):
        studies = data.get("studies") or []
        sid = studies[parts[1]].get("id", f"#{parts[1] + 1}") \
            if parts[1] < len(studies) and isinstance(studies[parts[1]], Mapping) \
            else f"#{parts[1] + 1}"
        prefix = f"study {sid!r}: "
        parts = parts[2:]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return prefix + (f"field {field}" if field else "record")


def raise_validation(exc: ValidationError, data: Mapping[str, Any], origin: str,
                      prefix: tuple[Any, ...] = ()) -> None:
    """Raise ``exc`` as one :class:`DataError` naming the record, the field and the fix."""
    errors = exc.errors(include_url=False)
    err = errors[0]  # one error line (the first problem), as every input format gives
    msg = str(err["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise DataError(f"{origin}: {_where(data, (*prefix, *err['loc']))}: {msg}{more}") from None


_Record = TypeVar("_Record", bound=BaseModel)


def validate_strictly(model: type[_Record], data: Mapping[str, Any], origin: str,
                      prefix: tuple[Any, ...] = ()) -> _Record:
    """Parsed TOML validated as ``model`` in pydantic's strict JSON mode: no coercion
    (``"11"`` and ``true`` are not whole numbers, ``4.0`` is not a count); enums and arrays
    read from their TOML values as usual, and a TOML date or time becomes a table that no
    field accepts as a number or text. A problem is one :class:`DataError` (see
    :func:`raise_validation`; ``prefix`` locates ``data`` inside the file)."""
    text = json.dumps(dict(data), allow_nan=True,
                      default=lambda v: {"toml-date-or-time": str(v)})
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        whole: Mapping[str, Any] = data
        for key in reversed(prefix):
            whole = {key: whole} if isinstance(key, str) else [whole]  # type: ignore[assignment]
        raise_validation(exc, whole, origin, prefix)
        raise  # unreachable: raise_validation raises


def parse_evidence(data: Mapping[str, Any], *, origin: str = "evidence") -> Evidence:
    """Validate parsed TOML as evidence, strictly (see :func:`validate_strictly`): every
    record structurally, and the studies used in the fit against today's patient model (a
    record with use = false may name a scenario the model does not have yet)."""
    evidence = validate_strictly(Evidence, data, origin)
    for study in evidence.used:
        check_against_model(study, origin)
    return evidence


@cache
def _builtin_protocols() -> tuple[str, ...]:
    from ciksim.data import builtin_names

    return tuple(builtin_names("protocols"))


def check_against_model(study: Study, origin: str = "evidence") -> None:
    """Names in a study (scenario, parameters, culture protocols) exist in today's models."""
    from ciksim.models.patient import Scenario, patient_model

    where = f"{origin}: study {study.id!r}"
    try:
        Scenario.load(study.population.scenario)
    except CikError as exc:
        raise DataError(f"{where}: field population.scenario: {exc}") from None
    names = patient_model().parameter_by_name
    for key in study.population.parameters:
        if key not in names:
            raise DataError(f"{where}: field population.parameters.{key}: not a patient-model "
                            "parameter; see `ciksim patient --help` or docs/models/patient.md")
    for i, arm in enumerate(study.arms):
        if arm.product and arm.product.culture_protocol is not None:
            name = arm.product.culture_protocol
            if name not in _builtin_protocols() and not Path(name).is_file():
                raise DataError(f"{where}: field arms[{i}].product.culture_protocol: unknown "
                                f"protocol {name!r}; use one of "
                                f"{', '.join(_builtin_protocols())} or a .toml file")


def read_evidence_toml(path: str | Path | None, shipped: str, label: str
                       ) -> tuple[dict[str, Any], str]:
    """The parsed TOML of an evidence file and its origin for messages: the packaged
    ``data/evidence/<shipped>`` when ``path`` is None (called the ``label``)."""
    from ciksim.schemas import parse_toml, read_text

    if path is None:
        text = (resources.files("ciksim.data") / "evidence" / shipped).read_text("utf-8")
        origin = label
    else:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"evidence file {str(p)!r} does not exist; give a TOML file or "
                            f"omit --evidence for the {label}")
        text, origin = read_text(p, what="evidence file"), str(p)
    return parse_toml(text, origin=origin), origin


def load_evidence(path: str | Path | None = None) -> Evidence:
    """The shipped evidence (``path`` None) or an evidence TOML file, validated."""
    data, origin = read_evidence_toml(path, "clinical.toml", "shipped evidence")
    return parse_evidence(data, origin=origin)


def read_cohort(path: str | Path) -> dict[str, list[tuple[float, str]]]:
    """A cohort CSV ``patient, arm, time_months, event[, mrd...]`` -> per arm, (time,
    event) rows; the format is declared in :mod:`ciksim.schemas.cohort`."""
    from ciksim.schemas.cohort import read_cohort as read

    return read(path)


def cohort_study(csv_path: str | Path, study_toml: str | Path) -> Study:
    """A user's cohort as a study: the design from ``study_toml`` (one ``[study]`` record
    whose arms name the CSV's arms and give product and schedule; n and events come from
    the CSV), the endpoint a survival likelihood over relapse times (deaths censor)."""
    rows = read_cohort(csv_path)
    p = Path(study_toml)
    if not p.is_file():
        raise DataError(f"study file {str(p)!r} does not exist; it describes the cohort's "
                        "design (setting, design, population, arms with product and schedule)")
    from ciksim.schemas.study import read_study_file

    return design_study(read_study_file(p), rows, origin=str(p), cohort=str(csv_path))


def design_study(record: Mapping[str, Any], rows: Mapping[str, list[tuple[float, str]]], *,
                 origin: str, cohort: str) -> Study:
    """The study of a cohort design ``record`` (a checked study file's ``[study]``) with
    each arm's patients ``rows`` (arm -> [(months, event)], as :func:`read_cohort` gives)
    from the file ``cohort``; ``origin`` names the study file in messages."""
    record = dict(record)
    arms_in = [dict(a) for a in record.get("arms", [])]
    names = [a.get("name") for a in arms_in]
    unknown = sorted(set(rows) - set(names))
    if unknown or not arms_in:
        raise DataError(f"{origin}: field arms: the cohort's arm(s) {', '.join(unknown or rows)} "
                        f"have no [[study.arms]] record; arms in the file: {names}")
    for arm in arms_in:
        got = rows.get(arm.get("name"), [])
        if not got:
            raise DataError(f"{origin}: field arms: arm {arm.get('name')!r} has no patients in "
                            f"{cohort}")
        arm["n"] = len(got)
        arm["times_months"] = tuple(t for t, _ in got)
        arm["relapsed"] = tuple(e == "relapse" for _, e in got)
    follow = max(t for arm in rows.values() for t, _ in arm)
    endpoint = dict(record.get("endpoint") or {})
    endpoint.setdefault("kind", "survival")
    endpoint.setdefault("at_months", max(follow, 1e-3))
    record.update({"arms": arms_in, "endpoint": endpoint})
    record.setdefault("source", f"user cohort {Path(cohort).name}")
    study = validate_strictly(Study, record, origin, ("studies", 0))
    if study.endpoint.kind != "survival":
        raise DataError(f"{origin}: field endpoint.kind: a cohort is a survival study; remove "
                        "kind or set it to 'survival'")
    check_against_model(study, origin)
    return study
