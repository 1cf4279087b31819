"""Residual leukemia as a stem-cell hierarchy, normal haematopoiesis and CIK infusions.

Leukemia-initiating cells (LIC) are the only self-renewing leukemic cells (clinical_more M3,
M4, M6). They are discrete birth-death populations (stochastic species), active ``S_a`` and
quiescent ``S_q`` (clinical_more M5, Hoffmann 2020): active LIC divide at ``lam_L`` and are
lost (differentiation, death) at a rate that leaves the clone its net growth; they become
quiescent at ``k_aq`` and wake at ``k_qa``; quiescent LIC neither divide nor differentiate and
lose fewer logs per chemotherapy course (``logkill_Q`` < ``logkill_L``). Active LIC feed a
continuous, non-self-renewing blast compartment ``B`` at a rate proportional to their count;
blasts are lost at the net rate ``d_B``. The production rate follows from the measured LIC
frequency ``f_LIC`` (Ailles 1999), and the active LIC's net renewal from the clone's net
doubling time ``T_double`` (Ommen 2010), so that a clone in balanced growth has both.
Extinction of the last LIC is cure, exactly.

Recognition is plastic, not a lineage: LIC are NKG2D-ligand-negative (Paczulla 2019: the
ligand-negative cells are the stem-like ones) and are seen only through the paths that do not
need ligands (TCR/MHC and other receptors, Linn 2009); blasts acquire ligands as they
differentiate, a share ``lig_frac`` of a patient's blasts carrying them. Killing uses the
killing model's law and parameters for the ``aml-blast`` target (rates converted from per hour
to per day), with the encounter constant scaled from the well to the marrow volume and an in
vivo activity factor ``s_vivo``. Normal marrow cells regrow logistically into the space the
leukemia leaves. MRD is an observable: the NPM1mut/ABL1 transcript ratio of a marrow sample
(``npm1_ratio``) and the flow-cytometric leukemic share (``flow_mrd``). Non-relapse mortality
(death in remission) is a competing event whose parameters are declared here and drawn per
patient by the analysis. Chemotherapy courses and CIK infusions are declared doses given by
protocol events. Time is in days.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ciksim.errors import DataError, ProtocolError
from ciksim.model import Assignment, Dose, Model, Parameter, Process, Species
from ciksim.model.loading import load_parameter_file
from ciksim.models.killing import (
    EFFECTOR_TYPES,
    LAW_PARAMETERS,
    RECOGNITION_FIELDS,
    kill_rate,
    killing_model,
    recognition_assignments,
    target_library,
    target_parameters,
)
from ciksim.models.leukemia import (
    blast_processes,
    burden_assignments,
    hierarchy_assignments,
    leukemia_species,
    lic_processes,
)
from ciksim.protocol import Protocol
from ciksim.units import convert

STOCHASTIC = ("S_a", "S_q")
_TARGET_PROPS = {"": "aml-blast", "_norm": "cd34"}


def _imported_parameters() -> list[Parameter]:
    """Killing parameters in per-day units, and the leukemic / normal target properties."""
    km = killing_model()
    out = []
    for name in LAW_PARAMETERS:
        p = km.parameter_by_name[name]
        if p.unit == "1/hour":
            f = convert("1 1/hour", "1/day", field=name)
            out.append(Parameter(p.name, p.value * f, "1/day", p.low * f, p.high * f,
                                 f"{p.source} [killing model, x24 h/day]", p.description,
                                 p.variability))
        else:
            out.append(p)
    lib = target_library()
    for suffix, target in _TARGET_PROPS.items():
        entry = lib[target]
        props = target_parameters(target)
        for prop in RECOGNITION_FIELDS:
            base = km.parameter_by_name[prop]
            out.append(Parameter(f"{prop}{suffix}", props[prop], "1", base.low,
                                 base.high, f"target library {target}: {entry['source']}",
                                 f"{base.description} ({'leukemic' if not suffix else 'normal'}"
                                 " marrow cells)"))
        out.append(Parameter(f"hla_mm{suffix}", 0.0, "1", 0.0, 1.0,
                             "autologous product; donor cells after allo-HSCT belong to the "
                             "allo model (docs/models/allo.md), not to this switch",
                             "target HLA-mismatched to the infused product (1) or not (0)"))
    return out


def _species() -> tuple[Species, ...]:
    return (
        *leukemia_species(),
        Species("N", "cells", "normal nucleated marrow cells",
                initial="N0_frac * marrow_per_kg * weight", roles=("cells", "normal")),
        Species("E_cik", "cells", "infused CD3+CD56+ cells in the marrow", roles=("effectors",)),
        Species("E_t", "cells", "infused CD3+CD56- T cells in the marrow", roles=("effectors",)),
        Species("E_nk", "cells", "infused CD3-CD56+ NK cells in the marrow",
                roles=("effectors",)),
    )


def _assignments() -> list[Assignment]:
    out = [
        *burden_assignments(),
        Assignment("normal_fraction", "N / K_marrow", "1", "normal marrow cells vs a full marrow",
                   roles=("normal_fraction",)),
        Assignment("leukemic_share", "L_tot / (L_tot + N)", "1",
                   "leukemic share of the nucleated cells in a marrow sample"),
        Assignment("npm1_ratio", "kappa_npm1 * leukemic_share", "1",
                   "NPM1mut/ABL1 transcript ratio of a marrow sample (noise-free)",
                   roles=("mrd",)),
        Assignment("flow_mrd", "leukemic_share", "1",
                   "leukemic share of CD45+ nucleated cells by flow (noise-free)",
                   roles=("flow_mrd",)),
    ]
    out += hierarchy_assignments()
    out += [
        Assignment("k_E", "log(2) / (t_half_E * (1 + il2_gain * il2_support))", "1/day",
                   "effector loss rate"),
        Assignment("E_tot", "E_cik + E_t + E_nk", "cells", "infused effectors in the marrow",
                   roles=("effector_cells",)),
        Assignment("K_vivo", "K_et / well_volume * marrow_volume", "cells",
                   "encounter constant scaled from the well to the marrow"),
        Assignment("encounter", "s_vivo / (K_vivo + E_tot + L_tot)", "1/cells",
                   "in vivo encounter factor (normal cells do not engage effectors)"),
        Assignment("nkg2d_on", "1 - eff_block * block_nkg2d", "1", "NKG2D path left unblocked"),
        Assignment("hla_on", "1 - eff_block * block_hla", "1", "TCR-HLA path left unblocked"),
    ]
    out += recognition_assignments(("pos", "neg"))
    out += recognition_assignments(("norm",), target="_norm")
    out += [
        Assignment("kill_pos", kill_rate("pos"), "1/day",
                   "killing rate of one NKG2D-ligand-positive leukemic cell"),
        Assignment("kill_neg", kill_rate("neg"), "1/day",
                   "killing rate of one ligand-negative leukemic cell (every LIC)"),
        Assignment("kill_B", "lig_frac * kill_pos + (1 - lig_frac) * kill_neg", "1/day",
                   "killing rate of one blast (a share lig_frac carry ligands)"),
        Assignment("kill_norm", kill_rate("norm"), "1/day", "killing rate of one normal cell"),
    ]
    for j in EFFECTOR_TYPES:
        out.append(Assignment(
            f"kills_{j}",
            f"k_{j} * ((rec_{j}_pos * lig_frac + rec_{j}_neg * (1 - lig_frac)) * B"
            f" + rec_{j}_neg * (S_a + S_q)) * E_{j} * encounter", "cells/day",
            f"leukemic cells killed per day by {j} effectors"))
    return out


def _processes() -> list[Process]:
    out = [
        *lic_processes(),
        Process("cik_kill_active", "kill_neg * S_a", {"S_a": -1},
                "active LIC killed by infused effectors"),
        Process("cik_kill_quiescent", "kill_neg * S_q", {"S_q": -1},
                "quiescent LIC killed by infused effectors"),
        *blast_processes(),
        Process("cik_kill_blast", "kill_B * B", {"B": -1}, "blasts killed by infused effectors"),
        Process("normal_growth", "r_N * N * (1 - (N + L_tot) / K_marrow)", {"N": 1},
                "normal cells regrow into free marrow space (negative when crowded)"),
        Process("normal_cik_kill", "kill_norm * N", {"N": -1},
                "normal cells killed by infused effectors"),
    ]
    for j in EFFECTOR_TYPES:
        out += [
            Process(f"loss_{j}", f"k_E * E_{j}", {f"E_{j}": -1}, f"loss of infused {j} cells"),
            Process(f"exhaust_{j}", f"kills_{j} / n_kill", {f"E_{j}": -1},
                    f"{j} effectors exhausted after n_kill kills"),
        ]
    return out


def _doses() -> tuple[Dose, ...]:
    cd3 = "amount * weight * f_marrow / (prod_cik + prod_t)"
    return (
        Dose("cik", "cells/kg", "CIK infusion: CD3+ cells per kg; the product's composition "
             "and the share reaching the marrow give the marrow effectors",
             adds={"E_cik": f"{cd3} * prod_cik", "E_t": f"{cd3} * prod_t",
                   "E_nk": f"{cd3} * prod_nk"}),
        Dose("chemo", "1", "chemotherapy course (amount = courses): log-kill of active LIC and "
             "blasts, a smaller log-kill of quiescent LIC, and of normal marrow cells",
             scales={"S_a": "10 ** (-logkill_L * amount)",
                     "S_q": "10 ** (-logkill_Q * amount)",
                     "B": "10 ** (-logkill_L * amount)",
                     "N": "10 ** (-logkill_N * amount)"}),
    )


@cache
def patient_model() -> Model:
    """The default patient model (``data/parameters/patient.toml`` + killing parameters)."""
    return Model(
        name="patient",
        description=(
            "Residual leukemia as a hierarchy (exact birth-death active and quiescent "
            "leukemia-initiating cells feeding continuous blasts) after chemotherapy, normal "
            "marrow regrowth, infused CIK effectors killing by the killing model's law scaled "
            "to the marrow, and MRD observables."
        ),
        species=_species(),
        parameters=load_parameter_file("patient") + tuple(_imported_parameters()),
        processes=tuple(_processes()),
        assignments=tuple(_assignments()),
        doses=_doses(),
    )


def check_in_range(model: Model, values: Mapping[str, Any], origin: str) -> None:
    """``DataError`` naming the first value outside its parameter's plausible range
    (``origin`` prefixes the parameter name, e.g. ``"scenario.toml: parameters."``)."""
    for name, v in values.items():
        p = model.parameter_by_name.get(name)
        if p is None:
            continue
        arr = np.asarray(v, dtype=float)
        bad = ~((arr >= p.low) & (arr <= p.high))
        if np.any(bad):
            x = float(arr[bad].flat[0]) if arr.ndim else float(arr)
            raise DataError(f"{origin}{name} = {x:g} lies outside its plausible range "
                            f"[{p.low:g}, {p.high:g}] ({p.description}); give a value in "
                            "the range")


@cache
def subtypes() -> Mapping[str, dict[str, Any]]:
    """Molecular subtypes and their doubling times (``data/scenarios/subtypes.toml``)."""
    text = (resources.files("ciksim.data") / "scenarios" / "subtypes.toml").read_text("utf-8")
    return MappingProxyType(tomllib.loads(text))


@dataclass(frozen=True)
class Scenario:
    """A patient population: chemotherapy protocol, parameter medians and spreads, endpoint."""

    name: str
    description: str
    protocol: Protocol
    parameters: Mapping[str, float] = field(default_factory=dict)
    variability: Mapping[str, float] = field(default_factory=dict)
    relapse_threshold: float = 0.05
    source: str = ""

    def with_subtype(self, subtype: str | None) -> Scenario:
        """The scenario with the leukemia's doubling time of a molecular subtype."""
        if subtype is None:
            return self
        table = subtypes()
        key = subtype.lower()
        if key not in table:
            raise DataError(f"subtype: unknown subtype {subtype!r}; use one of "
                            f"{', '.join(table)}")
        entry = table[key]
        pars = {**self.parameters, "T_double": float(entry["T_double"])}
        var = {**self.variability, "T_double": float(entry.get("variability", 0.2))}
        return Scenario(f"{self.name}/{key}", self.description, self.protocol, pars, var,
                        self.relapse_threshold, self.source)

    @classmethod
    def load(cls, name_or_path: str | Path) -> Scenario:
        """A built-in scenario (``aml-cr1``, ``aml-elderly``) or a TOML file."""
        from ciksim.data import load_toml

        data, origin = load_toml(name_or_path, "scenarios", "scenario", DataError,
                                 exclude=("subtypes",))
        return cls.from_dict(data, origin=origin)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "scenario") -> Scenario:
        """Build from parsed TOML, validated by :func:`ciksim.schemas.scenario_schema`
        (parameter ranges from the patient model's declarations)."""
        from ciksim.schemas import table_values, validate
        from ciksim.schemas.scenario import scenario_schema

        spec: Any = validate(scenario_schema(), data, origin=origin)
        model = patient_model()
        pars = {k: convert(v, model.parameter_by_name[k].unit, field=f"{origin}: {k}")
                for k, v in (table_values(spec.parameters) if spec.parameters else {}).items()}
        var = table_values(spec.variability) if spec.variability else {}
        try:
            protocol = Protocol.from_dict({"name": spec.name, "events": data.get("events", []),
                                           "triggers": data.get("triggers", [])},
                                          origin=origin)
            protocol.bind(model)
        except ProtocolError as exc:
            raise DataError(str(exc)) from exc
        scenario = cls(spec.name, spec.description, protocol, pars, var,
                       spec.relapse_threshold, spec.source)
        return scenario.with_subtype(spec.subtype)


def builtin_scenarios() -> list[str]:
    from ciksim.data import builtin_names

    return builtin_names("scenarios", exclude=("subtypes",))
