"""The leukemia hierarchy, declared once for every patient model that carries leukemia.

Leukemia-initiating cells (LIC), active ``S_a`` and quiescent ``S_q``, are exact discrete
birth–death–transfer populations (extinction of the last LIC is cure); they feed a continuous,
non-self-renewing blast compartment ``B``. The LIC pool as a whole grows at the net rate
``r_L = log(2) / T_double`` at low burden, slowing as the burden approaches ``K_L``, and
keeps the LIC frequency ``f_LIC`` in balanced growth. The patient model (after chemotherapy)
and the allo model (after transplant) add their own killing processes to these.

Parameters used (declared in the patient model's parameter file and imported by name by
the others): ``f_LIC``, ``k_aq``, ``k_qa``, ``d_B``, ``lam_L``, ``T_double``, ``K_L``,
``start_burden``, ``marrow_per_kg``, ``weight``.
"""

from __future__ import annotations

from ciksim.model import Assignment, Process, Species

HIERARCHY_PARAMETERS = ("f_LIC", "k_aq", "k_qa", "d_B")


def leukemia_species(owner: str = "") -> tuple[Species, Species, Species]:
    """``S_a``, ``S_q`` (stochastic) and ``B``, started from ``start_burden`` of the marrow in
    balanced growth. ``owner`` qualifies the descriptions (e.g. ``"recipient "``)."""
    lic = ("cells", "leukemic", "stochastic", "initiating")
    lic0 = "start_burden * marrow_per_kg * weight * f_LIC"
    active0 = "(k_qa + log(2) / T_double) / (k_qa + log(2) / T_double + k_aq)"
    return (
        Species("S_a", "cells", f"active (cycling) {owner}leukemia-initiating cells",
                initial=f"{lic0} * {active0}", roles=lic),
        Species("S_q", "cells", f"quiescent {owner}leukemia-initiating cells",
                initial=f"{lic0} * (1 - {active0})", roles=lic),
        Species("B", "cells", f"{owner}leukemic blasts (non-self-renewing progeny of the LIC)",
                initial="start_burden * marrow_per_kg * weight * (1 - f_LIC)",
                roles=("cells", "leukemic", "blasts")),
    )


def burden_assignments(owner: str = "") -> list[Assignment]:
    """The marrow's size and the leukemic burden: ``K_marrow`` (cells), ``LIC`` and
    ``L_tot`` (cells), ``blast_fraction`` (leukemic cells per cell of a full marrow).
    ``owner`` qualifies the descriptions (e.g. ``"recipient "``)."""
    return [
        Assignment("K_marrow", "marrow_per_kg * weight", "cells",
                   "nucleated cells of a full marrow"),
        Assignment("LIC", "S_a + S_q", "cells", f"{owner}leukemia-initiating cells",
                   roles=("initiating_cells",)),
        Assignment("L_tot", "S_a + S_q + B", "cells", f"{owner}leukemic cells",
                   roles=("leukemic_cells",)),
        Assignment("blast_fraction", "L_tot / K_marrow", "1",
                   "leukemic cells as a fraction of the nucleated cells of a full marrow",
                   roles=("leukemic_burden",)),
    ]


def hierarchy_assignments() -> list[Assignment]:
    """Per-cell rates of the hierarchy (1/day); need ``L_tot`` from the owning model."""
    return [
        Assignment("r_L", "log(2) / T_double", "1/day",
                   "net growth rate of the clone at low burden"),
        Assignment("r_a", "r_L + k_aq * r_L / (k_qa + r_L)", "1/day",
                   "net renewal of active LIC that gives the whole LIC pool the net rate r_L"),
        Assignment("mu_S", "max(lam_L - r_a, 0)", "1/day",
                   "loss of active LIC (differentiation and death)"),
        Assignment("birth_S", "max(lam_L - r_a * L_tot / K_L, 0)", "1/day",
                   "self-renewing division of active LIC, slowing as the burden approaches K_L"),
        Assignment("active_share", "(k_qa + r_L) / (k_qa + r_L + k_aq)", "1",
                   "active share of LIC in balanced growth"),
        Assignment("p_B", "(d_B + r_L) * (1 - f_LIC) / (f_LIC * active_share)", "1/day",
                   "blasts produced per active LIC per day (gives the LIC frequency f_LIC)"),
    ]


def lic_processes() -> list[Process]:
    """Birth, loss and the two transfers of the initiating cells."""
    return [
        Process("lic_renewal", "birth_S * S_a", {"S_a": 1},
                "self-renewing division of an active LIC (birth)"),
        Process("lic_loss", "mu_S * S_a", {"S_a": -1},
                "loss of an active LIC by differentiation or death"),
        Process("lic_quiesce", "k_aq * S_a", {"S_a": -1, "S_q": 1},
                "an active LIC becomes quiescent (transfer)"),
        Process("lic_wake", "k_qa * S_q", {"S_q": -1, "S_a": 1},
                "a quiescent LIC re-enters the cycle (transfer)"),
    ]


def blast_processes() -> list[Process]:
    """Blasts fed by the active LIC count and lost at ``d_B``."""
    return [
        Process("blast_production", "p_B * S_a", {"B": 1},
                "blasts produced by active LIC (deterministic, fed by the LIC count)"),
        Process("blast_loss", "d_B * B", {"B": -1},
                "net loss of blasts (maturation and death exceed their divisions)"),
    ]
