"""Cytotoxicity in the well: effector-target encounter, killing, exhaustion; declared once.

Effectors: CD3+CD56+ (``E_cik``), CD3+CD56- T (``E_t``) and CD3-CD56+ NK (``E_nk``), each with
its own lethal hit rate. Targets: NKG2D-ligand-positive (``T_pos``) and -negative (``T_neg``)
cells. Each target declares how effectors see it (``RECOGNITION_MODES``): NKG2D ligands
(blockable by anti-NKG2D), a TCR/MHC-restricted antigen presented on HLA class I (CD3+
effectors only; blockable by anti-HLA class I), allo-HLA (an alloreactive TCR path for
HLA-mismatched targets, blockable by anti-HLA) and other receptors (NCR, DNAM-1, LFA-1).
Recognition of a target by an effector type is the sum of the paths the target declares; NK
recognition is inhibited by target HLA class I (inhibitory KIR/NKG2A, released by anti-HLA).
Encounter saturates: the per-target killing rate is
``Σ k_j r_j E_j / (K_et + E + T)``, which is mass action at low cell numbers, bounded by
``k_j r_j`` per target at high E:T and per effector at low E:T (serial killing). Each kill
uses up 1/``n_kill`` of an effector (exhaustion). Time is in hours.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from ciksim.errors import DataError
from ciksim.model import Assignment, Model, Process, Species
from ciksim.model.loading import load_parameter_file

#: How effectors can see a target (a target's ``recognition`` list): mode → the target
#: properties that mode uses. Properties of modes a target does not declare are 0.
RECOGNITION_MODES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "nkg2d": ("lig_frac", "lig_level"),
    "tcr-mhc": ("tcr_ag",),
    "allo-hla": ("hla_mm",),
    "other": ("s_other",),
})
#: Target properties every target gives, whatever its recognition modes.
_ALWAYS = ("hla_i", "k_spont", "g_tgt")
#: Target properties set from the library (parameter names of the model).
TARGET_FIELDS = ("lig_frac", "lig_level", "s_other", "tcr_ag", "hla_i", "hla_mm", "k_spont",
                 "g_tgt")
#: Target properties the recognition law reads (suffixed per target by the patient model).
RECOGNITION_FIELDS = ("lig_level", "s_other", "tcr_ag", "hla_i")
#: Effector-side parameters of the shared killing law (the patient model imports these).
LAW_PARAMETERS = ("k_cik", "k_t", "k_nk", "f_nkg2d_cik", "f_nkg2d_t", "f_nkg2d_nk", "tcr_cik",
                  "tcr_t", "allo_t", "allo_cik", "i_kir", "eff_block", "block_nkg2d",
                  "block_hla", "n_kill", "K_et")
EFFECTOR_TYPES = ("cik", "t", "nk")


def recognition(j: str, positive: bool, target: str = "") -> str:
    """Recognition of a target by effector type ``j`` (the law shared with the patient model).

    ``target`` suffixes the target-property parameters (``lig_level``, ``s_other``,
    ``tcr_ag``, ``hla_i``, ``hla_mm``); ``positive`` selects NKG2D-ligand-positive cells.
    CD3+ effectors (``cik``, ``t``) see a TCR/MHC-restricted antigen only on HLA class I
    (``tcr_ag * hla_i``) and HLA-mismatched targets through alloreactive TCRs; both paths
    are blocked by anti-HLA class I. NK cells have neither path, and are inhibited by HLA I.
    """
    nkg2d = f"f_nkg2d_{j} * lig_level{target} * nkg2d_on + " if positive else ""
    tcr = (f" + (tcr_{j} * tcr_ag{target} * hla_i{target} + allo_{j} * hla_mm{target})"
           " * hla_on") if j != "nk" else ""
    kir = f" * (1 - i_kir * hla_i{target} * hla_on)" if j == "nk" else ""
    return f"({nkg2d}(1 - f_nkg2d_{j}) * s_other{target}{tcr}){kir}"


def kill_rate(kind: str) -> str:
    """Per-target killing rate: Σ_j k_j · rec_j · E_j · encounter (shared law)."""
    terms = " + ".join(f"k_{j} * rec_{j}_{kind} * E_{j}" for j in EFFECTOR_TYPES)
    return f"({terms}) * encounter"


def recognition_assignments(kinds: tuple[str, ...] = ("pos", "neg"), target: str = ""
                            ) -> list[Assignment]:
    """``rec_<j>_<kind>`` assignments for every effector type."""
    out = []
    for j in EFFECTOR_TYPES:
        for kind in kinds:
            out.append(Assignment(f"rec_{j}_{kind}", recognition(j, kind == "pos", target), "1",
                                  f"recognition of {kind} targets by {j} cells"))
    return out


def _recognition(j: str) -> list[Assignment]:
    return [Assignment(f"kills_{j}",
                       f"k_{j} * (rec_{j}_pos * T_pos + rec_{j}_neg * T_neg) * E_{j} * encounter",
                       "cells/hour", f"targets killed per hour by {j} effectors")]


@cache
def killing_model() -> Model:
    """The default killing model (parameters from ``data/parameters/killing.toml``)."""
    species = (
        Species("T_pos", "cells", "live NKG2D-ligand-positive targets",
                initial="T0 * lig_frac", roles=("targets",)),
        Species("T_neg", "cells", "live NKG2D-ligand-negative targets",
                initial="T0 * (1 - lig_frac)", roles=("targets",)),
        Species("Lysed", "cells", "targets killed by effectors", roles=("lysed",)),
        Species("Spont", "cells", "targets dead of spontaneous death"),
        Species("E_cik", "cells", "active CD3+CD56+ effectors", initial="et_ratio * T0 * f_cik",
                roles=("effectors",)),
        Species("E_t", "cells", "active CD3+CD56- T effectors", initial="et_ratio * T0 * f_t",
                roles=("effectors",)),
        Species("E_nk", "cells", "active CD3-CD56+ NK effectors", initial="et_ratio * T0 * f_nk",
                roles=("effectors",)),
        Species("E_exh", "cells", "effectors exhausted by serial killing"),
    )
    assignments = [
        Assignment("nkg2d_on", "1 - eff_block * block_nkg2d", "1", "NKG2D path left unblocked"),
        Assignment("hla_on", "1 - eff_block * block_hla", "1", "TCR-HLA path left unblocked"),
        Assignment("live_targets", "T_pos + T_neg", "cells", "live target cells",
                   roles=("live_targets",)),
        Assignment("encounter", "1 / (K_et + E_cik + E_t + E_nk + E_exh + live_targets)",
                   "1/cells", "encounter saturation factor"),
    ]
    assignments += recognition_assignments()
    for j in EFFECTOR_TYPES:
        assignments += _recognition(j)
    assignments.append(Assignment("kill_pos", kill_rate("pos"), "1/hour",
                                  "killing rate of one ligand-positive target"))
    assignments.append(Assignment("kill_neg", kill_rate("neg"), "1/hour",
                                  "killing rate of one ligand-negative target"))
    processes = [
        Process("lysis_pos", "kill_pos * T_pos", {"T_pos": -1, "Lysed": 1},
                "effectors kill ligand-positive targets"),
        Process("lysis_neg", "kill_neg * T_neg", {"T_neg": -1, "Lysed": 1},
                "effectors kill ligand-negative targets"),
        Process("spont_pos", "k_spont * T_pos", {"T_pos": -1, "Spont": 1},
                "spontaneous death of ligand-positive targets"),
        Process("spont_neg", "k_spont * T_neg", {"T_neg": -1, "Spont": 1},
                "spontaneous death of ligand-negative targets"),
        Process("growth_pos", "g_tgt * T_pos", {"T_pos": 1}, "target growth (long assays)"),
        Process("growth_neg", "g_tgt * T_neg", {"T_neg": 1}, "target growth (long assays)"),
    ]
    for j in EFFECTOR_TYPES:
        processes.append(Process(f"exhaust_{j}", f"kills_{j} / n_kill",
                                 {f"E_{j}": -1, "E_exh": 1},
                                 f"{j} effectors exhausted after n_kill kills"))
        processes.append(Process(f"death_{j}", f"d_eff * E_{j}", {f"E_{j}": -1},
                                 f"death of active {j} effectors"))
    return Model(
        name="killing",
        description=(
            "Cytotoxicity assay in a well: three effector types with their own lethal hit "
            "rates, NKG2D-ligand-positive and -negative targets recognised through the paths "
            "each target declares (NKG2D, TCR/MHC antigen, allo-HLA, other receptors), "
            "saturating encounter, serial killing with exhaustion, blocking antibodies, "
            "spontaneous death."
        ),
        species=species,
        parameters=load_parameter_file("killing"),
        processes=tuple(processes),
        assignments=tuple(assignments),
        time_unit="hour",
    )


@cache
def target_library() -> MappingProxyType[str, dict[str, Any]]:
    """The built-in targets: name → {description, source, target-property parameters}."""
    text = (resources.files("ciksim.data") / "targets" / "library.toml").read_text("utf-8")
    return MappingProxyType(tomllib.loads(text))


def target_recognition(target: str | Mapping[str, Any]) -> tuple[str, ...]:
    """The recognition modes a target declares (a library name or a target dict)."""
    entry, where = _entry(target)
    modes = entry.get("recognition")
    if modes is None:
        raise DataError(f"{where}.recognition: missing; declare how effectors see the target, "
                        f"e.g. recognition = [\"nkg2d\", \"other\"] (modes: "
                        f"{', '.join(RECOGNITION_MODES)})")
    if isinstance(modes, str):
        modes = [modes]
    if not isinstance(modes, (list, tuple)) or not all(isinstance(m, str) for m in modes):
        raise DataError(f"{where}.recognition: {modes!r} must be a list of mode names "
                        f"({', '.join(RECOGNITION_MODES)})")
    unknown = [m for m in modes if m not in RECOGNITION_MODES]
    if unknown:
        raise DataError(f"{where}.recognition: unknown recognition mode(s) "
                        f"{', '.join(map(repr, unknown))}; use any of "
                        f"{', '.join(RECOGNITION_MODES)}")
    return tuple(dict.fromkeys(modes))


def _entry(target: str | Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    if isinstance(target, str):
        lib = target_library()
        if target not in lib:
            raise DataError(
                f"target: unknown target {target!r}; built-in: {', '.join(lib)}, or a TOML file"
            )
        return lib[target], f"target {target!r}"
    return target, "target"


def target_parameters(target: str | Mapping[str, Any]) -> dict[str, float]:
    """Target-property parameters for a library name or a dict (e.g. read from TOML).

    The dict declares ``recognition`` (modes of ``RECOGNITION_MODES``) and gives the
    properties of those modes plus ``hla_i``, ``k_spont`` and ``g_tgt``; the properties of
    undeclared modes are 0.
    """
    entry, where = _entry(target)
    modes = target_recognition(target)
    used = {f for m in modes for f in RECOGNITION_MODES[m]}
    need = [f for f in TARGET_FIELDS if f in used or f in _ALWAYS]
    missing = [f for f in need if f not in entry]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}; give "
                        f"{', '.join(need)} for recognition {list(modes)}")
    model = killing_model()
    out = {}
    for f in TARGET_FIELDS:
        v = entry.get(f, 0.0)
        p = model.parameter_by_name[f]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not p.low <= v <= p.high:
            raise DataError(f"{where}.{f}: {v!r} must be a number in [{p.low:g}, {p.high:g}] "
                            f"({p.description})")
        if f not in need and v != 0:
            mode = next(m for m, fields in RECOGNITION_MODES.items() if f in fields)
            raise DataError(f"{where}.{f}: {v!r} is given but recognition does not list "
                            f"{mode!r}; add {mode!r} to {where}.recognition or drop {f}")
        out[f] = float(v)
    return out
