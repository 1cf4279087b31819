"""The ``export`` jobs: a model set up exactly as a run command sets it up, written as SBML
or as a COMBINE archive (SBML + SED-ML) that another tool reproduces in one call.

Defaults follow the run commands: ``culture`` under ``cik-standard`` with 1e8 PBMC seeded
(``ciksim culture``); ``killing`` with the typical donor's ``cik`` product against ``k562``
at the model's E:T for 4 hours (``ciksim killing``, one E:T per export); ``patient`` with
the ``aml-cr1`` scenario (its parameters and chemotherapy) and three CIK infusions of 5e7
CD3+ cells/kg whose composition is the typical donor's day-21 ``cik-gmp`` harvest, followed
for 3 years (``ciksim patient``); ``allo`` with the ``allo-aml-cr`` scenario (its donor
and conditioning parameters and its fixed events), followed for 2 years after the stem-cell
infusion (as ``ciksim patient --scenario allo-aml-cr``). An option the model lacks raises a CikError
naming the model that has it. A protocol with triggers (doses given when a monitored
quantity crosses a threshold) is refused by the SBML writer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ciksim.errors import DataError
from ciksim.model import Model
from ciksim.protocol import Protocol

MODELS = ("culture", "killing", "patient", "allo")
_OPTIONS = {  # option -> models that have it
    "protocol": ("culture", "patient", "allo"), "start_cells": ("culture",),
    "days": ("culture",), "effector": ("killing",), "target": ("killing",),
    "et": ("killing",), "hours": ("killing",), "block": ("killing",),
    "scenario": ("patient", "allo"), "subtype": ("patient",), "cik": ("patient",),
    "cik_dose": ("patient",), "infusions": ("patient",), "interval": ("patient",),
    "first_infusion_day": ("patient",), "product": ("patient",),
    "start_burden": ("patient", "allo"), "years": ("patient", "allo"),
    "il2_support": ("patient",), "donor": ("allo",), "conditioning": ("allo",),
    "chimerism": ("allo",), "events": ("allo",),
}


@dataclass(frozen=True)
class ModelExport:
    """A model with the protocol and parameter values of one run, and its time course.

    ``end_time`` and ``step`` (in the model's time unit) are the run's output grid;
    ``settings`` records the choices (written into the notes and the SED-ML).
    """

    model: Model
    protocol: Protocol | None
    parameters: Mapping[str, float]
    end_time: float
    step: float
    outputs: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.model.name

    def sbml(self, gillespie: bool = False) -> str:
        """The SBML L3V2 text (see :mod:`ciksim.engines.sbml`); ``gillespie``: the variant
        for Gillespie tools without assignment rules (GillesPy2)."""
        from ciksim.engines.sbml import to_sbml

        return to_sbml(self.model, self.protocol, self.parameters, gillespie=gillespie)

    def write_sbml(self, path: str | Path, gillespie: bool = False) -> Path:
        return _write_atomic(Path(path), self.sbml(gillespie).encode("utf-8"))

    def write_combine(self, path: str | Path) -> Path:
        """A COMBINE archive (``.omex``): the SBML, a SED-ML time course and its report."""
        from ciksim.exchange.sedml import combine_archive

        return _write_atomic(Path(path), combine_archive(self))


def _write_atomic(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def export_model(model: str, **options: Any) -> ModelExport:
    """Set up ``model`` (culture, killing, patient or allo) as its run command does.

    Options (``None`` means the run command's default):

    - culture: ``protocol``, ``start_cells``, ``days``;
    - killing: ``effector`` (cik, lak, nk, t or a culture output folder), ``target``,
      ``et`` (one E:T ratio), ``hours``, ``block``;
    - patient: ``scenario``, ``subtype``, ``cik`` (False: chemotherapy alone),
      ``cik_dose`` (CD3+ cells/kg per infusion), ``infusions``, ``interval`` and
      ``first_infusion_day`` (days), ``product`` (a culture output folder),
      ``start_burden``, ``years``, ``il2_support``, ``protocol`` (a protocol file instead
      of the scenario's);
    - allo: ``scenario`` (default ``allo-aml-cr``), ``donor`` (sibling, unrelated,
      haploidentical), ``conditioning`` (mac, ric), ``chimerism`` (donor share of the
      marrow on day 0, 0-1), ``start_burden``, ``years`` (default 2), ``protocol`` (a protocol
      TOML whose events and triggers replace the scenario's), ``events`` (protocol event
      tables added to the scenario's, e.g. DLI or CIK infusions; donor-cell infusions come
      after engraftment);
    - every model: ``parameters``, values set last.
    """
    if model not in MODELS:
        raise DataError(f"model: unknown model {model!r}; use {', '.join(MODELS)}")
    parameters = dict(options.pop("parameters", None) or {})
    given = {k: v for k, v in options.items() if v is not None}
    for key in given:
        if key not in _OPTIONS:
            raise DataError(f"export: unknown option {key!r}; options are "
                            f"{', '.join(sorted(_OPTIONS))}")
        if model not in _OPTIONS[key]:
            owners = " or ".join(_OPTIONS[key])
            flag = "--" + key.replace("_", "-")
            raise DataError(f"export {model}: the {model} model has no option {key!r} "
                            f"({flag}; it applies to {owners}); drop it or export {owners}")
    job = {"culture": _culture, "killing": _killing, "patient": _patient,
           "allo": _allo}[model]
    exp = job(**given)
    if parameters:
        from ciksim.model.model import assert_known

        assert_known(exp.model, parameters, f"export {model}: parameters")
        exp = ModelExport(exp.model, exp.protocol, {**exp.parameters, **parameters},
                          exp.end_time, exp.step, exp.outputs,
                          {**exp.settings, "parameters": parameters})
    return exp


def _positive(value: float, name: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise DataError(f"{name}: must be a number > 0 {unit}, got {value!r}")
    return float(value)


def _by_roles(model: Model, roles: tuple[str, ...]) -> tuple[str, ...]:
    """Variables found by role (whatever they are called), each once, in role order."""
    out: list[str] = []
    for role in roles:
        out += [n for n in model.with_role(role) if n not in out]
    return tuple(out)


def _culture(protocol: str | Path | Protocol = "cik-standard", start_cells: float = 1e8,
             days: float | None = None) -> ModelExport:
    from ciksim.models.culture import culture_model

    model = culture_model()
    proto = protocol if isinstance(protocol, Protocol) else Protocol.load(protocol)
    end = _positive(days if days is not None else (proto.harvest_day or 21.0), "days", "days")
    pars = {**proto.parameter_values(model),
            "start_cells": _positive(start_cells, "start_cells", "cells")}
    outputs = _by_roles(model, ("total_cells", "cd3cd56_cells", "cd3_cells", "nk", "viability",
                                "il2", "volume"))
    return ModelExport(model, proto, pars, end, 1.0, outputs,
                       {"protocol": proto.name, "start_cells": pars["start_cells"]})


def _killing(effector: str | Path = "cik", target: str | Path = "k562", et: float | None = None,
             hours: float = 4.0, block: str | None = None) -> ModelExport:
    from ciksim.analysis.killing import BLOCKS, resolve_product, resolve_target
    from ciksim.models.killing import killing_model

    model = killing_model()
    product = resolve_product(effector, donors=1, seed=0)  # the typical donor, or a folder
    target_name, pars = resolve_target(target)
    pars = dict(pars)
    for key in ("f_cik", "f_t", "f_nk"):
        pars[key] = float(product.median_composition()[key])
    if et is not None:
        pars["et_ratio"] = _positive(et, "et", "(E:T ratio)")
    if block is not None:
        if block not in BLOCKS:
            raise DataError(f"block: use {' or '.join(BLOCKS)}, not {block!r}")
        pars[f"block_{block}"] = 1.0
    end = _positive(hours, "hours", "hours")
    outputs = _by_roles(model, ("live_targets", "targets", "lysed", "effectors"))
    et_value = pars.get("et_ratio", model.parameter_by_name["et_ratio"].value)
    return ModelExport(model, None, pars, end, end / 40, outputs,
                       {"effector": str(effector), "target": target_name,
                        "et": float(et_value), "block": block})


def _patient(scenario: str | Path = "aml-cr1", subtype: str | None = None, cik: bool = True,
             cik_dose: float = 5e7, infusions: int = 3, interval: float = 21.0,
             first_infusion_day: float = 30.0, product: str | Path | None = None,
             start_burden: float | None = None, years: float = 3.0,
             il2_support: bool = False, protocol: str | Path | None = None) -> ModelExport:
    from ciksim.analysis.patient import CikSchedule, patient_protocol, resolve_product
    from ciksim.models.patient import Scenario, patient_model

    model = patient_model()
    scen = Scenario.load(scenario).with_subtype(subtype)
    pars = dict(scen.parameters)
    schedule = None
    if cik:
        schedule = CikSchedule(dose_per_kg=_positive(cik_dose, "cik_dose", "CD3+ cells/kg"),
                               infusions=infusions, interval_days=interval,
                               first_day=first_infusion_day, il2_support=bool(il2_support))
        comp = resolve_product(product).median_composition()
        pars.update({"prod_cik": comp["f_cik"], "prod_t": comp["f_t"],
                     "prod_nk": comp["f_nk"], "il2_support": float(il2_support)})
    elif product is not None or il2_support:
        raise DataError("export patient: product and il2_support describe CIK infusions; "
                        "drop them or leave the infusions on (no --no-cik)")
    proto = patient_protocol(scen, schedule)
    if protocol is not None:
        proto = Protocol.load(protocol)
        proto.bind(model)
    if start_burden is not None:
        if not 0 < start_burden <= 1:
            raise DataError(f"start_burden: {start_burden!r} must be a fraction in (0, 1]")
        pars["start_burden"] = float(start_burden)
    end = _positive(years, "years", "years") * 365.25
    outputs = _by_roles(model, ("leukemic_cells", "leukemic_burden", "normal_fraction",
                                "effector_cells"))
    return ModelExport(model, proto, pars, end, 1.0, outputs,
                       {"scenario": scen.name, "cik": schedule is not None,
                        "cik_dose": cik_dose if schedule else None, "years": years})


def _allo(scenario: str | Path = "allo-aml-cr", donor: str | None = None,
          conditioning: str | None = None, chimerism: float | None = None,
          start_burden: float | None = None, years: float = 2.0,
          protocol: str | Path | None = None,
          events: list[dict[str, Any]] | None = None) -> ModelExport:
    from ciksim.data import load_toml
    from ciksim.models.allo import AlloScenario, allo_model

    model = allo_model()
    protocol_events = triggers = None
    if protocol is not None:  # its events and triggers replace the scenario's (checked by
        # the scenario; the SBML writer refuses triggers)
        data, _ = load_toml(protocol, "protocols", "protocol", DataError)
        protocol_events = list(data.get("events", []))
        triggers = list(data.get("triggers", []))
    scen = AlloScenario.load(scenario, donor=donor, conditioning=conditioning,
                             chimerism=chimerism, events=protocol_events, triggers=triggers)
    if events:
        scen = scen.with_events(list(events))
    pars = dict(scen.parameters)
    if start_burden is not None:
        if not 0 < start_burden <= 1:
            raise DataError(f"start_burden: {start_burden!r} must be a fraction in (0, 1]")
        pars["start_burden"] = float(start_burden)
    end = _positive(years, "years", "years") * 365.25
    outputs = _by_roles(model, ("leukemic_burden", "chimerism", "gvhd_grade",
                                "alloreactive_cells", "leukemic_cells"))
    return ModelExport(model, scen.protocol, pars, end, 1.0, outputs,
                       {"scenario": scen.name, "donor": scen.donor,
                        "conditioning": scen.conditioning, "chimerism": chimerism,
                        "years": years})


__all__ = ["MODELS", "ModelExport", "export_model"]
