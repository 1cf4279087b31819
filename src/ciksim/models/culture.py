"""Ex vivo generation of CIK cells from PBMC: the culture model, declared once.

Populations (cells): resting CD3+CD56- T (``T_rest``), activated CD3+CD56- T in the two G1
stages before their first S phase (``T_g1a``, ``T_g1b``), cycling/activated CD3+CD56- T
(``T_act``), CD3+CD56+ CIK (``CIK``), CD3-CD56+ NK (``NK``) and other PBMC (``Other``).
Medium: IL-2, IFN-γ, IL-1 (IU/mL; 1 IU/mL IL-2 ≈ 4 pM), anti-CD3 (ng/mL), the remaining
capacity of the medium (``Medium``, 1 = fresh), the IFN-γ priming state (``Primed``, 0-1),
and the culture volume (mL). See ``docs/models/culture.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ciksim.errors import DataError
from ciksim.model import Assignment, Model, Process, Species
from ciksim.model.loading import load_parameter_file

_T = ("cells", "cd3", "cd3cd56neg")


def _species() -> list[Species]:
    return [
        Species("T_rest", "cells", "resting (non-activated) CD3+CD56- T cells",
                initial="start_cells * (f_cd3 - f_cik0)", roles=_T),
        Species("T_g1a", "cells", "anti-CD3-activated CD3+CD56- T cells in early G1",
                roles=(*_T, "activated")),
        Species("T_g1b", "cells", "activated CD3+CD56- T cells in late G1 (before S phase)",
                roles=(*_T, "activated")),
        Species("T_act", "cells", "activated, proliferating CD3+CD56- T cells",
                roles=(*_T, "activated", "cycling")),
        Species("CIK", "cells", "CD3+CD56+ NK-like T cells (CIK)",
                initial="start_cells * f_cik0", roles=("cells", "cd3", "cd3cd56pos")),
        Species("NK", "cells", "CD3-CD56+ NK cells", initial="start_cells * f_nk",
                roles=("cells", "nk")),
        Species("Other", "cells", "other PBMC (B cells, monocytes)",
                initial="start_cells * (1 - f_cd3 - f_nk)", roles=("cells", "other")),
        Species("Dead", "cells", "dead cells not yet disintegrated (for viability)",
                roles=("dead",)),
        Species("IL2", "IU/mL", "IL-2 in the medium", kind="concentration", roles=("il2",)),
        Species("IFNg", "IU/mL", "IFN-γ in the medium", kind="concentration"),
        Species("IL1", "IU/mL", "IL-1 in the medium (U/mL)", kind="concentration"),
        Species("OKT3", "ng/mL", "anti-CD3 antibody (OKT3) in the medium", kind="concentration"),
        Species("Medium", "1", "remaining capacity of the medium to support growth (1 = fresh)",
                initial="1", kind="concentration", medium=1.0),
        Species("Primed", "1", "IFN-γ priming state of the culture (0 = unprimed, 1 = full)",
                kind="state"),
        Species("V", "mL", "culture volume", initial="start_cells / seed_density",
                kind="volume", roles=("volume",)),
    ]


def _assignments() -> list[Assignment]:
    return [
        Assignment("total_cells", "T_rest + T_g1a + T_g1b + T_act + CIK + NK + Other", "cells",
                   "all cells in culture", roles=("total_cells",)),
        Assignment("cd3cd56_cells", "CIK", "cells", "CD3+CD56+ cells", roles=("cd3cd56_cells",)),
        Assignment("cd3_cells", "T_rest + T_g1a + T_g1b + T_act + CIK", "cells", "CD3+ cells",
                   roles=("cd3_cells",)),
        Assignment("density", "total_cells / V", "cells/mL", "cell density"),
        Assignment("viability", "total_cells / (total_cells + Dead)", "1",
                   "live share of all cells counted", roles=("viability",)),
        Assignment("il2_pM", "il2_pM_per_IU * IL2", "pM", "IL-2 as molar concentration"),
        Assignment("S_il2", "il2_pM / (il2_pM + EC50_il2)", "1",
                   "IL-2 saturation of the high-affinity receptor (activated T cells)"),
        Assignment("S_il2_int", "il2_pM / (il2_pM + EC50_il2_int)", "1",
                   "IL-2 saturation of the intermediate-affinity receptor (NK, resting T)"),
        Assignment("stim", "OKT3 / (OKT3 + K_okt3)", "1", "anti-CD3 stimulation (0-1)"),
        Assignment("growth_limit",
                   "Medium / (Medium + K_med) * (1 + K_med)"
                   " * max(1 - (density / dens_max) ** 2, 0)",
                   "1", "growth allowed by medium capacity and density (1 = unlimited)"),
        Assignment("cycle_rate", "r_max * S_il2 * growth_limit", "1/day",
                   "division rate of a cycling activated T cell", roles=("cycle_rate",)),
        Assignment("prolif", "medium_support * donor_fitness", "1",
                   "share of cells in cycle allowed by the medium and the donor's cells "
                   "(1 = research medium, healthy donor)"),
        Assignment("growth_fraction", "phi_min + (phi_max - phi_min) * stim", "1",
                   "fraction of activated CD3+CD56- T cells in cycle"),
        Assignment("conv_boost", "1 + e_ifng * Primed + e_il1 * IL1 / (IL1 + K_il1)", "1",
                   "IFN-γ priming and IL-1 enhancement of CD56 acquisition"),
        Assignment("il2_users", "T_g1a + T_g1b + T_act + CIK + NK", "cells",
                   "cells carrying IL-2 receptors that take up IL-2"),
    ]


def _processes() -> list[Process]:
    return [
        Process("activation", "(k_act * stim + k_act_il2 * S_il2_int) * T_rest",
                {"T_rest": -1, "T_g1a": 1}, "resting T cells activated by anti-CD3 (or IL-2)"),
        Process("g1_progress", "k_g1 * T_g1a", {"T_g1a": -1, "T_g1b": 1},
                "progress from early to late G1"),
        Process("first_s_phase", "k_g1 * T_g1b", {"T_g1b": -1, "T_act": 1},
                "entry into the first S phase: the cell joins the cycling pool"),
        Process("t_division", "cycle_rate * growth_fraction * prolif * T_act", {"T_act": 1},
                "division of activated CD3+CD56- T cells"),
        Process("cd56_gain", "k_conv * conv_boost * prolif * T_act", {"T_act": -1, "CIK": 1},
                "activated CD3+CD56- T cells acquire CD56 (the only source of new CIK)"),
        Process("cik_division", "cycle_rate * phi_cik * prolif * CIK", {"CIK": 1},
                "division of CD3+CD56+ cells"),
        Process("nk_division", "r_nk * S_il2_int * growth_limit * prolif * NK", {"NK": 1},
                "IL-2-driven division of NK cells"),
        Process("rest_death", "d_rest * T_rest", {"T_rest": -1, "Dead": 1},
                "death of resting T cells"),
        Process("act_death", "d_act * T_act", {"T_act": -1, "Dead": 1},
                "death of activated T cells"),
        Process("cik_death", "d_cik * CIK", {"CIK": -1, "Dead": 1}, "death of CD3+CD56+ cells"),
        Process("nk_death", "d_nk * NK", {"NK": -1, "Dead": 1}, "death of NK cells"),
        Process("other_loss", "d_other * Other", {"Other": -1, "Dead": 1},
                "loss of B cells and monocytes"),
        Process("dead_clearance", "k_clear * Dead", {"Dead": -1},
                "dead cells disintegrate (no longer counted)"),
        Process("il2_uptake", "q_il2 * S_il2 * il2_users / V", {"IL2": -1},
                "IL-2 consumed by receptor-bearing cells"),
        Process("il2_decay", "k_il2 * IL2", {"IL2": -1}, "abiotic IL-2 decay"),
        Process("ifng_loss", "k_cyt * IFNg", {"IFNg": -1}, "IFN-γ consumed or decayed"),
        Process("il1_loss", "k_cyt * IL1", {"IL1": -1}, "IL-1 consumed or decayed"),
        Process("okt3_loss", "k_okt3 * OKT3", {"OKT3": -1}, "anti-CD3 cleared by the cells"),
        Process("medium_use", "q_med * total_cells / V * Medium", {"Medium": -1},
                "medium capacity used by the cells"),
        Process("priming", "k_prime * IFNg / (IFNg + K_ifng) * (1 - Primed)", {"Primed": 1},
                "IFN-γ primes the culture"),
    ]


@cache
def culture_model() -> Model:
    """The default CIK culture model (parameters from ``data/parameters/culture.toml``)."""
    return Model(
        name="culture",
        description=(
            "Ex vivo generation of CIK cells from PBMC: anti-CD3 activation after a G1 lag, "
            "IL-2-dependent proliferation limited by medium and density, CD56 acquisition by "
            "activated CD3+CD56- T cells, NK expansion on IL-2, IL-2 uptake and decay."
        ),
        species=tuple(_species()),
        parameters=load_parameter_file("culture"),
        processes=tuple(_processes()),
        assignments=tuple(_assignments()),
    )


@dataclass(frozen=True)
class Donor:
    """Starting material: whose cells are cultured (``data/donors``), as parameter medians.

    ``healthy`` is the reference the growth parameters were fitted to; ``patient-post-chemo``
    is a patient's own blood after chemotherapy or an autograft (target C11).
    """

    name: str
    description: str = ""
    source: str = ""
    parameters: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))

    @classmethod
    def load(cls, name_or_path: str | Path) -> Donor:
        """A built-in donor option (``healthy``, ``patient-post-chemo``) or a TOML file."""
        from ciksim.data import load_toml

        data, origin = load_toml(name_or_path, "donors", "donor", DataError)
        return cls.from_dict(data, origin=origin)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "donor") -> Donor:
        """Starting material from parsed TOML, checked against its schema
        (:func:`ciksim.schemas.donor.donor_schema`)."""
        from ciksim.schemas import table_values, validate
        from ciksim.schemas.donor import donor_schema

        d = validate(donor_schema(), data, origin=origin)
        pars = table_values(d.parameters) if d.parameters is not None else {}
        return cls(d.name or origin, d.description, d.source, pars)


def builtin_donors() -> list[str]:
    from ciksim.data import builtin_names

    return builtin_names("donors")
