"""After allogeneic stem-cell transplantation: recipient leukemia, chimerism, host tissue and
alloreactive donor cells (donor CIK and DLI), declared once.

Day 0 is the stem-cell infusion. The recipient's residual leukemia is the patient model's
hierarchy pattern: active ``S_a`` and quiescent ``S_q`` leukemia-initiating cells (LIC) are
exact birth-death-transfer populations (stochastic species) feeding a continuous blast
compartment ``B`` (clinical_more M3-M6). Recipient normal haematopoiesis ``H`` (the residual
host antigen-presenting cells come from it) and donor haematopoiesis ``D`` regrow into the
marrow at the patient model's rate; their ratio on day 0 is the donor chimerism then (the
graft's alloreactive cells then kill recipient cells, so it rises towards full donor).

Donor cells carry alloreactive precursors: conventional T cells ``P_t`` (from the graft and
DLI) and, at a much lower fraction, CIK cells ``P_cik`` (clinical_more M25). Precursors are
primed at a rate set by the stimulus (host antigen presentation, which falls as chimerism
becomes full donor, amplified by inflammation from conditioning or infection: M22, M23), or
lost unprimed. A primed cell runs a programmed expansion (``C_t``, ``C_cik``): it makes
``burst`` effector progeny over the programme's duration (proliferation blocked by
immunosuppression), and its progeny, activated cells ``X_t``, ``X_cik``, contract. The
response is thus proportional to the precursors primed (the dose) and ends once they are
used up, unless a new infusion brings more. A share ``f_mem`` of the contracting effectors
become resting memory ``M`` (clinical S71, CAR-T proxy; fewer under immunosuppression),
recalled only by recipient haematopoietic antigen (a relapse, mixed chimerism), at a tenth
of the antigen priming needs, into effectors ``X_m`` that kill recipient haematopoietic
cells but not host tissue (GvL-restricted memory, assumed after M26). The same
activated cells kill recipient haematopoietic cells (leukemic and normal: GvL and conversion
to full donor chimerism) and damage host tissue (skin, gut, liver lumped: ``Dmg``, 0-1), which
drives the GvHD hazard and grade; CIK damage tissue less per cell (IFN-gamma protection, M25).
Donor haematopoiesis shares the donor's antigens and is never a target (A7, M26).
Immunosuppression ``IS`` (prophylaxis from day 0, tapered; a dose restarts it) blocks priming,
expansion and memory formation, so it blunts GvHD and GvL alike. Time is in days.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from ciksim.errors import DataError, ProtocolError, SimulationWarning
from ciksim.model import Assignment, Dose, Model, Parameter, Process, Species
from ciksim.model.loading import load_parameter_file
from ciksim.models.killing import (
    EFFECTOR_TYPES,
    LAW_PARAMETERS,
    RECOGNITION_FIELDS,
    kill_rate,
    recognition_assignments,
)
from ciksim.models.leukemia import (
    HIERARCHY_PARAMETERS,
    blast_processes,
    burden_assignments,
    hierarchy_assignments,
    leukemia_species,
    lic_processes,
)
from ciksim.models.patient import patient_model
from ciksim.protocol import Protocol

STOCHASTIC = ("S_a", "S_q")
DONOR_CELLS = ("t", "cik")
#: The dose that withdraws immunosuppression (amount: the share of the level stopped).
WITHDRAWAL = "is_withdrawal"


def donor_course(infusions: list[tuple[float, str, float]], withdraw: bool
                 ) -> list[tuple[float, str, float]]:
    """A donor-cell course as (offset from the first infusion in days, dose, amount): the
    ``infusions``, preceded on the first day by the withdrawal of immunosuppression when
    ``withdraw`` (practice before donor cells; the allo evidence and trial arms' default
    convention)."""
    return [(0.0, WITHDRAWAL, 1.0), *infusions] if withdraw else list(infusions)
#: Cumulative hazards of the per-patient events (states integrated by the engines; an event
#: happens when its cumulative hazard reaches the patient's own unit-exponential draw).
HAZARDS = {"nrm": "Lam_nrm", "leukemic_death": "Lam_leuk", "cgvhd": "Lam_cgvhd"}
# Shared with the patient model: one declaration, imported by name (the leukemia hierarchy,
# and the non-alloreactive killing law of infused CIK products with its effector persistence).
_FROM_PATIENT = ("weight", "marrow_per_kg", "lam_L", "T_double", "K_L", "r_N",
                 *HIERARCHY_PARAMETERS, *LAW_PARAMETERS, *RECOGNITION_FIELDS, "hla_mm",
                 "lig_frac", "marrow_volume", "well_volume", "f_marrow", "t_half_E",
                 "il2_support", "il2_gain", "prod_cik", "prod_t", "prod_nk", "s_vivo")


def _imported_parameters() -> tuple[Parameter, ...]:
    pm = patient_model()
    return tuple(pm.parameter_by_name[name] for name in _FROM_PATIENT)


def _species() -> tuple[Species, ...]:
    return (
        *leukemia_species("recipient "),
        Species("H", "cells", "recipient normal haematopoietic cells (incl. host APCs)",
                initial="H0_frac * marrow_per_kg * weight", roles=("cells", "recipient")),
        Species("D", "cells", "donor-derived normal haematopoietic cells",
                initial="D0_frac * marrow_per_kg * weight", roles=("cells", "donor")),
        Species("P_t", "cells", "unprimed alloreactive conventional donor T cells",
                initial="graft_cd3 * weight * f_allo_t", roles=("alloreactive", "precursors")),
        Species("P_cik", "cells", "unprimed alloreactive donor CIK cells",
                roles=("alloreactive", "precursors")),
        Species("C_t", "cells", "primed alloreactive conventional donor T cells in their "
                "expansion programme", roles=("alloreactive", "primed")),
        Species("C_cik", "cells", "primed alloreactive donor CIK cells in their expansion "
                "programme", roles=("alloreactive", "primed")),
        Species("X_t", "cells", "activated alloreactive conventional donor T cells",
                roles=("alloreactive", "activated")),
        Species("X_cik", "cells", "activated alloreactive donor CIK cells",
                roles=("alloreactive", "activated")),
        Species("M", "cells", "resting alloreactive donor memory cells (GvL-restricted)",
                roles=("alloreactive", "memory")),
        Species("C_m", "cells", "recalled alloreactive donor memory cells in their expansion "
                "programme", roles=("alloreactive", "primed")),
        Species("X_m", "cells", "activated alloreactive donor effectors from recalled memory "
                "(GvL-restricted)", roles=("alloreactive", "activated")),
        Species("Infl", "1", "inflammation (conditioning, infection), relative to "
                "myeloablative conditioning", initial="infl_0", kind="state"),
        Species("IS", "1", "immunosuppression level (1 = full prophylaxis)", initial="is_0",
                kind="state"),
        Species("Dmg", "1", "host-tissue damage (skin, gut, liver lumped; 0 none, 1 maximal)",
                kind="state", roles=("tissue_damage",)),
        Species("Fib", "1", "chronic (fibrotic) host-tissue injury left by repeated damage "
                "(0 none, 1 maximal)", kind="state", roles=("chronic_damage",)),
        Species("E_cik", "cells", "infused donor CD3+CD56+ cells in the marrow "
                "(non-alloreactive NKG2D killing)", roles=("effectors",)),
        Species("E_t", "cells", "infused donor CD3+CD56- cells of a CIK product in the marrow",
                roles=("effectors",)),
        Species("E_nk", "cells", "infused donor CD3-CD56+ NK cells of a CIK product in the "
                "marrow", roles=("effectors",)),
        Species("Lam_nrm", "1", "cumulative hazard of death not caused by leukemia",
                kind="state", roles=("cumulative_hazard",)),
        Species("Lam_leuk", "1", "cumulative hazard of death from leukemia", kind="state",
                roles=("cumulative_hazard",)),
        Species("Lam_cgvhd", "1", "cumulative hazard of chronic GvHD", kind="state",
                roles=("cumulative_hazard",)),
    )


def _assignments() -> list[Assignment]:
    return [
        *burden_assignments("recipient "),
        Assignment("donor_chimerism", "D / (D + H + L_tot)", "1",
                   "donor share of the marrow's nucleated cells", roles=("chimerism",)),
        *hierarchy_assignments(),
        Assignment("free_marrow", "1 - (H + D + L_tot) / K_marrow", "1",
                   "free marrow space (negative when crowded)"),
        Assignment("is_on", "1 - is_block * min(IS, 1)", "1",
                   "share of priming, expansion and memory formation left by "
                   "immunosuppression"),
        Assignment("stimulus", "(apc_floor + (1 - apc_floor) * (1 - donor_chimerism))"
                   " * (1 + infl_gain * Infl)", "1",
                   "alloantigen stimulus: host antigen presentation amplified by inflammation"),
        Assignment("drive", "is_on * stimulus / (K_stim + stimulus)", "1",
                   "relative priming and expansion drive of alloreactive cells"),
        Assignment("recall_stimulus", "(1 - donor_chimerism) * (1 + infl_gain * Infl)", "1",
                   "recipient haematopoietic antigen (leukemic and normal recipient cells) "
                   "that recalls memory cells, amplified by inflammation"),
        Assignment("recall_drive", "is_on * recall_stimulus / (K_recall + recall_stimulus)",
                   "1", "relative recall and expansion drive of alloreactive memory cells (memory "
                   "responds to less antigen than priming needs)"),
        Assignment("X_allo", "X_t + X_cik + X_m", "cells", "activated alloreactive donor cells",
                   roles=("alloreactive_cells",)),
        Assignment("X_tox", "X_t + cik_tox_rel * X_cik", "cells",
                   "activated alloreactive cells weighted by their host-tissue toxicity"),
        Assignment("kill_allo", "k_gvl * X_allo / (X_half + X_allo)", "1/day",
                   "alloreactive killing rate of one recipient haematopoietic cell (GvL)"),
        Assignment("dmg_drive", "X_tox / (X_half + X_tox)", "1",
                   "relative alloreactive attack on host tissue (GvHD)"),
        Assignment("gvhd_grade", "min(Dmg / dmg_grade, 4)", "1",
                   "overall GvHD grade (0-4, continuous) from host-tissue damage",
                   roles=("gvhd_grade",)),
        Assignment("mrd", "L_tot / (L_tot + H + D)", "1",
                   "recipient leukemic cells per nucleated marrow cell (what an NPM1 or "
                   "chimerism-based MRD assay sees, noise-free)", roles=("mrd",)),
        # Non-relapse mortality: conditioning toxicity (inflammation), infections under
        # immunosuppression, and GvHD, steeply with its grade; death from leukemia rises with
        # the blast fraction; chronic GvHD from the chronic (fibrotic) injury.
        Assignment("nrm_hazard", "h_nrm_tox * Infl + h_nrm_is * min(IS, 1)"
                   " + h_nrm_gvhd * (gvhd_grade / 4) ** nrm_power", "1/day",
                   "hazard of death not caused by leukemia (toxicity, infection, GvHD)",
                   roles=("nrm_hazard",)),
        Assignment("leuk_death_hazard", "h_leuk * min(blast_fraction, 1)", "1/day",
                   "hazard of death from leukemia (marrow failure), rising with the blast "
                   "fraction", roles=("leukemic_death_hazard",)),
        Assignment("cgvhd_hazard", "h_cgvhd * Fib", "1/day",
                   "hazard of chronic GvHD from the chronic host-tissue injury",
                   roles=("cgvhd_hazard",)),
        # Non-alloreactive killing by infused CIK products: the patient model's law.
        Assignment("k_E", "log(2) / (t_half_E * (1 + il2_gain * il2_support))", "1/day",
                   "loss rate of infused CIK-product effectors"),
        Assignment("E_tot", "E_cik + E_t + E_nk", "cells",
                   "infused CIK-product effectors in the marrow", roles=("effector_cells",)),
        Assignment("K_vivo", "K_et / well_volume * marrow_volume", "cells",
                   "encounter constant scaled from the well to the marrow"),
        Assignment("encounter", "s_vivo / (K_vivo + E_tot + L_tot)", "1/cells",
                   "in vivo encounter factor (normal cells do not engage effectors)"),
        Assignment("nkg2d_on", "1 - eff_block * block_nkg2d", "1",
                   "NKG2D path left unblocked"),
        Assignment("hla_on", "1 - eff_block * block_hla", "1", "TCR-HLA path left unblocked"),
        *recognition_assignments(("pos", "neg")),
        Assignment("kill_pos", kill_rate("pos"), "1/day",
                   "killing rate of one NKG2D-ligand-positive leukemic cell by CIK products"),
        Assignment("kill_neg", kill_rate("neg"), "1/day",
                   "killing rate of one ligand-negative leukemic cell (every LIC)"),
        Assignment("kill_B", "lig_frac * kill_pos + (1 - lig_frac) * kill_neg", "1/day",
                   "killing rate of one blast by CIK products (a share lig_frac carry ligands)"),
        *(Assignment(f"kills_{j}",
                     f"k_{j} * ((rec_{j}_pos * lig_frac + rec_{j}_neg * (1 - lig_frac)) * B"
                     f" + rec_{j}_neg * (S_a + S_q)) * E_{j} * encounter", "cells/day",
                     f"leukemic cells killed per day by {j} effectors")
          for j in EFFECTOR_TYPES),
    ]


def _programme(j: str, drive: str, who: str) -> list[Process]:
    """The expansion programme of primed cells ``C_j`` (``burst`` progeny per cell at full
    ``drive``, over ``1/k_prog`` days) into effectors ``X_j``, which contract at ``k_con``,
    a share ``f_mem`` of them into memory ``M`` (less under immunosuppression, ``is_on``:
    calcineurin inhibitors block the IL-2 that programs memory): one law for the T, CIK and
    recalled memory programmes."""
    return [
        Process(f"expand_{j}", f"burst * k_prog * {drive} * C_{j}", {f"X_{j}": 1},
                f"{who} in their programme make effector progeny, more the more of their "
                f"antigen they meet ({drive}: a leukemic relapse, inflammation), "
                "immunosuppression blocking proliferation"),
        Process(f"programme_end_{j}", f"k_prog * C_{j}", {f"C_{j}": -1, f"X_{j}": 1},
                f"the expansion programme of {who} ends (they join the effectors)"),
        Process(f"contract_{j}", f"k_con * (1 - f_mem * is_on) * X_{j}", {f"X_{j}": -1},
                f"activated effectors of {who} contract (die)"),
        Process(f"memory_{j}", f"k_con * f_mem * is_on * X_{j}", {f"X_{j}": -1, "M": 1},
                f"a share of the contracting effectors of {who} become resting memory cells "
                "(fewer under immunosuppression)"),
    ]


def _processes() -> list[Process]:
    out = [
        *lic_processes(),
        *blast_processes(),
        Process("gvl_active", "kill_allo * leuk_ag * S_a", {"S_a": -1},
                "active LIC killed by alloreactive donor cells (GvL)"),
        Process("gvl_quiescent", "kill_allo * leuk_ag * S_q", {"S_q": -1},
                "quiescent LIC killed by alloreactive donor cells (GvL)"),
        Process("gvl_blasts", "kill_allo * leuk_ag * B", {"B": -1},
                "blasts killed by alloreactive donor cells (GvL)"),
        Process("host_growth", "r_N * H * free_marrow", {"H": 1},
                "recipient normal haematopoiesis regrows into free marrow"),
        Process("host_haem_kill", "kill_allo * H", {"H": -1},
                "recipient normal haematopoietic cells killed by alloreactive cells "
                "(conversion to full donor chimerism)"),
        Process("donor_growth", "r_N * D * free_marrow", {"D": 1},
                "donor haematopoiesis regrows into free marrow (never an allo-target)"),
        Process("tissue_damage", "k_dmg * dmg_drive * (1 - Dmg)", {"Dmg": 1},
                "host tissue damaged by alloreactive donor cells (GvHD)"),
        Process("tissue_repair", "k_repair * Dmg", {"Dmg": -1}, "host tissue repairs"),
        Process("fibrosis", "k_fib * Dmg * (1 - Fib)", {"Fib": 1},
                "chronic injury builds up while host tissue is damaged"),
        Process("fibrosis_resolution", "k_fib_res * Fib", {"Fib": -1},
                "chronic injury resolves slowly"),
        Process("cik_kill_active", "kill_neg * S_a", {"S_a": -1},
                "active LIC killed by infused CIK-product effectors (not alloreactive)"),
        Process("cik_kill_quiescent", "kill_neg * S_q", {"S_q": -1},
                "quiescent LIC killed by infused CIK-product effectors (not alloreactive)"),
        Process("cik_kill_blast", "kill_B * B", {"B": -1},
                "blasts killed by infused CIK-product effectors (not alloreactive)"),
        *(p for j in EFFECTOR_TYPES for p in (
            Process(f"loss_{j}", f"k_E * E_{j}", {f"E_{j}": -1},
                    f"loss of infused {j} cells"),
            Process(f"exhaust_{j}", f"kills_{j} / n_kill", {f"E_{j}": -1},
                    f"{j} effectors exhausted after n_kill kills"))),
        Process("nrm_exposure", "nrm_hazard", {"Lam_nrm": 1},
                "cumulative hazard of death not caused by leukemia accrues"),
        Process("leukemic_death_exposure", "leuk_death_hazard", {"Lam_leuk": 1},
                "cumulative hazard of death from leukemia accrues"),
        Process("cgvhd_exposure", "cgvhd_hazard", {"Lam_cgvhd": 1},
                "cumulative hazard of chronic GvHD accrues"),
        Process("infl_decay", "k_infl * Infl", {"Infl": -1}, "inflammation resolves"),
        Process("is_taper", "k_taper * IS * t ** 4 / (t_hold ** 4 + t ** 4)", {"IS": -1},
                "immunosuppression is held for about t_hold days, then tapered"),
    ]
    for j in DONOR_CELLS:
        out += [
            Process(f"prime_{j}", f"k_act * drive * P_{j}", {f"P_{j}": -1, f"C_{j}": 1},
                    f"alloreactive {j} precursors primed by host antigen presentation start "
                    "their expansion programme"),
            Process(f"precursor_loss_{j}", f"k_P * P_{j}", {f"P_{j}": -1},
                    f"unprimed alloreactive {j} precursors lost"),
            *_programme(j, "drive", f"primed alloreactive {j} cells"),
        ]
    out += [
        Process("memory_loss", "k_mem * M", {"M": -1}, "alloreactive memory cells are lost"),
        Process("recall", "k_act * recall_drive * M", {"M": -1, "C_m": 1},
                "memory cells recalled by recipient haematopoietic antigen (a relapse, mixed "
                "chimerism) start an expansion programme"),
        *_programme("m", "recall_drive", "recalled memory cells (GvL-restricted progeny)"),
    ]
    return out


_CD3_MARROW = "amount * weight * f_marrow / (prod_cik + prod_t)"


def _doses() -> tuple[Dose, ...]:
    return (
        Dose("dli", "cells/kg", "donor lymphocyte infusion: CD3+ cells per kg; the "
             "alloreactive share joins the conventional precursors",
             adds={"P_t": "amount * weight * f_allo_t"}),
        Dose("cik", "cells/kg", "donor CIK infusion: CD3+ cells per kg; the product's "
             "effectors reaching the marrow kill leukemic cells without alloreactivity (the "
             "patient model's law), a much smaller alloreactive share than in a DLI joins "
             "the CIK precursors (clinical_more M25), and the infusion of activated cells "
             "inflames (fever, chills: clinical S100)",
             adds={"P_cik": "amount * weight * f_allo_t * cik_allo_rel", "Infl": "infl_cik",
                   "E_cik": f"{_CD3_MARROW} * prod_cik", "E_t": f"{_CD3_MARROW} * prod_t",
                   "E_nk": f"{_CD3_MARROW} * prod_nk"}),
        Dose("immunosuppression", "1", "immunosuppression (re)started: amount is the level "
             "added (1 = full)", adds={"IS": "amount"}),
        Dose(WITHDRAWAL, "1", "immunosuppression withdrawn: amount is the share of "
             "the current level stopped (1 = all), as at a relapse before donor cells",
             scales={"IS": "1 - min(amount, 1)"}),
        Dose("infection", "1", "infection: inflammation added (relative to conditioning)",
             adds={"Infl": "amount"}),
    )


@cache
def allo_model() -> Model:
    """The post-transplant model (``data/parameters/allo.toml`` + shared patient parameters)."""
    return Model(
        name="allo",
        description=(
            "After allogeneic stem-cell transplantation: recipient leukemia as a hierarchy "
            "(exact birth-death-transfer LIC feeding continuous blasts), recipient and donor "
            "haematopoiesis (chimerism), alloreactive donor T and CIK cells primed by host "
            "antigen presentation and inflammation, killing recipient haematopoietic cells "
            "(GvL) and damaging host tissue (GvHD), blunted by immunosuppression; their "
            "memory, recalled by recipient haematopoietic antigen, gives GvL only."
        ),
        species=_species(),
        parameters=load_parameter_file("allo") + _imported_parameters(),
        processes=tuple(_processes()),
        assignments=tuple(_assignments()),
        doses=_doses(),
    )


_INFUSIONS = ("dli", "cik")
_SCENARIO_KEYS = {"name", "description", "source", "relapse_threshold", "engraftment_day",
                  "donor", "conditioning", "donors", "conditionings", "variability", "events",
                  "triggers", "chimerism"}


@dataclass(frozen=True)
class AlloScenario:
    """A post-transplant population: donor type, conditioning, parameter medians and spreads,
    the day of engraftment, the relapse threshold (blast fraction) and a protocol of
    donor-cell infusions, immunosuppression or infections (days after the stem-cell infusion).
    ``caveats``: what the chosen donor or conditioning option does not model (the option's
    ``caveat`` text in the scenario file), warned of on loading and shown in reports.
    """

    name: str
    description: str
    donor: str
    conditioning: str
    protocol: Protocol
    engraftment_day: float
    parameters: Mapping[str, float] = field(default_factory=dict)
    variability: Mapping[str, float] = field(default_factory=dict)
    relapse_threshold: float = 0.05
    source: str = ""
    caveats: tuple[str, ...] = ()

    @classmethod
    def load(cls, name_or_path: str | Path, *, donor: str | None = None,
             conditioning: str | None = None, chimerism: float | None = None,
             events: list[dict[str, Any]] | None = None,
             triggers: list[dict[str, Any]] | None = None) -> AlloScenario:
        """A built-in scenario (``allo-aml-cr``) or a TOML file, with options: ``donor``
        (e.g. sibling, unrelated, haploidentical), ``conditioning`` (mac, ric), ``chimerism``
        (donor share of the normal marrow on day 0, 0-1), protocol ``events`` and
        ``triggers`` (doses given when monitoring finds e.g. ``mrd`` above a threshold)
        replacing the file's."""
        from ciksim.data import load_toml

        data, origin = load_toml(name_or_path, "allo", "allo scenario", DataError)
        data = dict(data)
        for key, value in (("donor", donor), ("conditioning", conditioning),
                           ("chimerism", chimerism), ("events", events),
                           ("triggers", triggers)):
            if value is not None:
                data[key] = value
        return cls.from_dict(data, origin=origin)

    def with_events(self, events: list[dict[str, Any]], origin: str = "events"
                    ) -> AlloScenario:
        """The scenario with protocol ``events`` (TOML-style tables, each in time order)
        merged into its own by day, checked like the file's (declared doses, infusions not
        before engraftment)."""
        try:
            extra = Protocol.from_dict({"name": self.protocol.name, "events": events},
                                       origin=origin).events
            merged = sorted((*self.protocol.events, *extra), key=lambda e: e.day)
            protocol = replace(self.protocol, events=tuple(merged))
            protocol.bind(allo_model())
        except ProtocolError as exc:
            raise DataError(str(exc)) from exc
        _check_infusions(protocol, self.engraftment_day, origin)
        return replace(self, protocol=protocol)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "allo scenario"
                  ) -> AlloScenario:
        """Build from parsed TOML; bad input raises :class:`DataError` naming the field."""
        unknown = sorted(set(data) - _SCENARIO_KEYS)
        if unknown:
            raise DataError(f"{origin}: unknown field(s) {', '.join(unknown)}; allowed: "
                            f"{', '.join(sorted(_SCENARIO_KEYS))}")
        model = allo_model()
        pars: dict[str, float] = {}
        choices = {}
        caveats = []
        for key, table in (("donor", "donors"), ("conditioning", "conditionings")):
            options = data.get(table) or {}
            choice = data.get(key)
            if not isinstance(choice, str) or choice.lower() not in options:
                raise DataError(f"{origin}: {key} {choice!r} is not known to this scenario; "
                                f"use one of {', '.join(options) or '(none declared)'}")
            choices[key] = choice.lower()
            caveat = options[choices[key]].get("caveat")
            if caveat:
                caveats.append(f"{key} {choices[key]}: {caveat}")
            pars.update(_parameter_table(model, options[choices[key]].get("parameters", {}),
                                         f"{origin}: {table}.{choices[key]}.parameters"))
        engraft = _number(data.get("engraftment_day", 21.0), f"{origin}: engraftment_day")
        if engraft < 0:
            raise DataError(f"{origin}: engraftment_day must be >= 0 (days after the "
                            "stem-cell infusion)")
        if "chimerism" in data:
            pars["H0_frac"] = _host_fraction(model, data["chimerism"], pars, origin)
        threshold = _number(data.get("relapse_threshold", 0.05), f"{origin}: relapse_threshold")
        if not 0 < threshold < 1:
            raise DataError(f"{origin}: relapse_threshold must lie in (0, 1) (a blast fraction)")
        var = _parameter_table(model, data.get("variability", {}), f"{origin}: variability")
        try:
            spec: dict[str, Any] = {"name": str(data.get("name", "allo")),
                                    "events": list(data.get("events", []))}
            if data.get("triggers"):
                spec["triggers"] = list(data["triggers"])
            protocol = Protocol.from_dict(spec, origin=origin)
            protocol.bind(model)
        except ProtocolError as exc:
            raise DataError(str(exc)) from exc
        _check_infusions(protocol, engraft, origin)
        for caveat in caveats:
            warnings.warn(caveat, SimulationWarning, stacklevel=2)
        return cls(str(data.get("name", "allo")), str(data.get("description", "")),
                   choices["donor"], choices["conditioning"], protocol, engraft, pars, var,
                   threshold, str(data.get("source", "")), tuple(caveats))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise DataError(f"{where}: give a finite number, got {value!r}")
    return float(value)


def _parameter_table(model: Model, table: Any, where: str) -> dict[str, float]:
    if not isinstance(table, Mapping):
        raise DataError(f"{where}: give a table of parameter = number")
    out = {}
    for name, value in table.items():
        if name not in model.parameter_by_name:
            raise DataError(f"{where}: unknown parameter {name!r} of the allo model; see "
                            "docs/models/allo.md for the declared parameters")
        out[name] = _number(value, f"{where}.{name}")
    return out


def _host_fraction(model: Model, chimerism: Any, pars: Mapping[str, float],
                   origin: str) -> float:
    """Recipient marrow share at day 0 (``H0_frac``) giving the donor share ``chimerism``
    of the normal marrow on day 0, ``D0_frac / (D0_frac + H0_frac)``. Not the chimerism at
    engraftment: the graft's alloreactive cells kill recipient cells from day 0, so it
    rises (0.5 on day 0 gives about 0.84 on day 21 in the median sibling/MAC patient)."""
    c = _number(chimerism, f"{origin}: chimerism")
    if not 0 < c <= 1:
        raise DataError(f"{origin}: chimerism {c:g} must lie in (0, 1] (donor share of the "
                        "marrow on day 0; graft failure (0) is not modelled)")
    d0 = pars.get("D0_frac", model.parameter_by_name["D0_frac"].value)
    h0 = d0 * (1 - c) / c
    bounds = model.parameter_by_name["H0_frac"]
    if h0 > bounds.high:
        raise DataError(f"{origin}: chimerism {c:g} needs a recipient marrow share {h0:.3g} "
                        f"on day 0 above H0_frac's range (<= {bounds.high:g}); give a higher "
                        "chimerism (donor share of the marrow on day 0)")
    return h0


def _check_infusions(protocol: Protocol, engraft: float, origin: str) -> None:
    """Donor-cell infusions start only after engraftment, fixed or triggered (a trigger's
    first monitoring day plus the dose's offset)."""
    for ev in protocol.events:
        if ev.action == "dose" and ev.dose in _INFUSIONS and ev.day < engraft:
            raise DataError(f"{origin}: events: {ev.dose} on day {ev.day:g} comes before "
                            f"engraftment (engraftment_day = {engraft:g}); give days >= "
                            f"{engraft:g} or an earlier engraftment_day")
    for trig in protocol.triggers:
        first = min(trig.monitor)
        for dose in trig.doses:
            if dose.dose in _INFUSIONS and first + dose.offset < engraft:
                raise DataError(
                    f"{origin}: triggers: {trig.name!r} may give {dose.dose} on day "
                    f"{first + dose.offset:g} (first monitoring day {first:g} + offset "
                    f"{dose.offset:g}), before engraftment (engraftment_day = {engraft:g}); "
                    f"start monitoring on day >= {engraft - dose.offset:g}")
