"""The page layout: one tab per job family, each with its inputs, a run button, a status
line (progress, errors) and a result area (tables, figures, downloads)."""

from __future__ import annotations

from typing import Any

from shiny import ui

from ciksim.inference import FIT_STEPS, FIT_WALKERS
from ciksim.web.session import MAX_UPLOAD_BYTES

#: Slots: one per job a page runs (key, job name, figure file, report title).
SLOTS = {
    "cu": ("culture", "culture"),
    "pl": ("harvest-plan", "culture"),
    "ki": ("killing", "killing_curve"),
    "ly": ("lysis", "lysis"),
    "fi": ("fit-culture", "fit"),
    "pa": ("patient", "patient"),
    "tr": ("trial", "km"),
    "ca": ("calibration", "prior_posterior"),
    "po": ("posterior", "prior_posterior"),
    "al": ("allo-patient", "allo_patient"),
}
#: Slots with a Cancel button (``{key}_cancel``).
CANCEL = ("tr", "ca")
_CSS = """
.ciksim-error { color: #b00020; white-space: pre-wrap; font-size: 0.9em; margin: 0.2em 0 0.8em; }
.ciksim-result table { font-size: 0.9em; }
.ciksim-result img { max-width: 100%; }
.ciksim-downloads .btn { margin: 0 0.3em 0.3em 0; }
.ciksim-downloads .form-group { display: inline-block; margin: 0 0.6em 0 0; }
.ciksim-arm { margin-bottom: 0.6em; }
.ciksim-arm .card-header { padding: 0.3em 0.8em; font-weight: 600; }
.ciksim-valid { color: #1b5e20; font-size: 0.9em; }
"""


def choices() -> dict[str, Any]:
    """Built-in names offered by the selectors (never file paths)."""
    from ciksim.data import builtin_names
    from ciksim.models.killing import target_library
    from ciksim.models.patient import builtin_scenarios

    return {"protocols": builtin_names("protocols"), "targets": list(target_library()),
            "scenarios": builtin_scenarios(), "trials": builtin_names("trials"),
            "subtypes": ["npm1", "pml-rara", "runx1-runx1t1", "cbfb-myh11"],
            "allo": {name: allo_options(name) for name in builtin_names("allo")}}


def allo_options(name: str) -> dict[str, Any]:
    """A built-in allo scenario's donor types and conditionings ({name: description}) and
    its defaults."""
    import tomllib
    from importlib import resources

    from ciksim.data import builtin_names

    if name not in builtin_names("allo"):  # a name from the page, never a path
        name = builtin_names("allo")[0]
    data = tomllib.loads((resources.files("ciksim.data") / "allo" / f"{name}.toml").read_text(
        encoding="utf-8"))
    return {"donors": {k: f"{k}: {v.get('description', k)}"
                       for k, v in data.get("donors", {}).items()},
            "conditionings": {k: f"{k}: {v.get('description', k)}"
                              for k, v in data.get("conditionings", {}).items()},
            "donor": data.get("donor"), "conditioning": data.get("conditioning")}


def _run_row(key: str, label: str) -> Any:
    cancel = (ui.input_action_button(f"{key}_cancel", "Cancel", class_="btn-outline-danger")
              if key in CANCEL else None)
    return ui.div(ui.input_action_button(f"{key}_run", label, class_="btn-primary"), cancel,
                  ui.output_ui(f"{key}_status"))


def _result(key: str) -> Any:
    return ui.div(ui.output_ui(f"{key}_result"), class_="ciksim-result")


def _upload(key: str, label: str, accept: str = ".csv") -> Any:
    return ui.div(ui.input_file(f"{key}_file", label, accept=[accept]),
                  ui.output_ui(f"{key}_upload_msg"))


def page_ui() -> Any:
    """The whole page (a navbar with one panel per job family)."""
    c = choices()
    limit = f"CSV, at most {MAX_UPLOAD_BYTES // 2**20} MB"
    culture = ui.nav_panel("Culture", ui.layout_sidebar(ui.sidebar(
        ui.input_selectize("cu_protocols", "Protocols (several to compare)", c["protocols"],
                           selected="cik-standard", multiple=True),
        ui.input_numeric("cu_donors", "Donors", 200, min=1),
        ui.input_numeric("cu_days", "Days (empty: harvest day)", None, min=1),
        ui.input_numeric("cu_seed", "Seed", 0),
        ui.input_numeric("cu_start_cells", "PBMC seeded on day 0", 1e8),
        _run_row("cu", "Run culture"),
        ui.hr(),
        ui.h6("Harvest plan (first protocol)"),
        ui.input_numeric("pl_dose", "Dose (cells)", 5e7),
        ui.input_select("pl_per", "per", ["kg", "infusion"]),
        ui.input_numeric("pl_weight", "Body weight (kg)", 70),
        ui.input_numeric("pl_infusions", "Infusions", 3, min=1),
        ui.input_select("pl_cells", "Count", {"cd3cd56": "CD3+CD56+", "cd3": "CD3+"}),
        _run_row("pl", "Plan harvest"), width=330),
        _result("cu"), _result("pl")))
    killing = ui.nav_panel("Killing", ui.layout_sidebar(ui.sidebar(
        ui.input_select("ki_effector", "Effector", ["cik", "lak", "nk", "t"]),
        ui.input_select("ki_target", "Target", c["targets"], selected="k562"),
        ui.input_text("ki_et", "E:T ratios", "40,20,10,5,2.5"),
        ui.input_numeric("ki_hours", "Assay hours", 4),
        ui.input_select("ki_block", "Blocking antibody", {"": "none", "nkg2d": "anti-NKG2D",
                                                          "hla": "anti-HLA"}),
        ui.input_numeric("ki_donors", "Donors", 200, min=1),
        ui.input_numeric("ki_seed", "Seed", 0),
        _run_row("ki", "Simulate assay"),
        ui.hr(),
        ui.h6("Your lysis plate"),
        _upload("ly", f"Plate CSV: effector,target,et_ratio,kind,replicate,value ({limit})"),
        ui.input_numeric("ly_targets_per_well", "Targets per well", 1e4),
        ui.input_numeric("ly_hours", "Assay hours", 4),
        _run_row("ly", "Analyse plate"), width=330),
        _result("ki"), _result("ly")))
    fit = ui.nav_panel("Fit", ui.layout_sidebar(ui.sidebar(
        _upload("fi", f"Counts CSV: donor,day,quantity,value[,sd] ({limit})"),
        ui.input_select("fi_protocol", "Protocol", c["protocols"], selected="cik-standard"),
        ui.input_numeric("fi_dose", "Forecast the day this many cells are reached", None),
        ui.input_select("fi_cells", "Cells", ["cd3cd56", "cd3", "total"]),
        ui.input_numeric("fi_steps", "MCMC steps per walker", FIT_STEPS, min=10),
        ui.input_numeric("fi_walkers", "MCMC walkers", FIT_WALKERS, min=4),
        ui.input_numeric("fi_seed", "Seed", 0),
        _run_row("fi", "Fit"), width=330),
        _result("fi")))
    patient = ui.nav_panel("Patient", ui.layout_sidebar(ui.sidebar(
        ui.input_select("pa_scenario", "Scenario", c["scenarios"], selected="aml-cr1"),
        ui.input_select("pa_subtype", "Subtype", {"": "all (scenario mix)",
                                                   **{s: s for s in c["subtypes"]}}),
        ui.input_checkbox("pa_cik", "CIK infusions", True),
        ui.input_numeric("pa_cik_dose", "CD3+ cells/kg per infusion", 5e7),
        ui.input_numeric("pa_infusions", "Infusions", 3, min=1),
        ui.input_numeric("pa_interval", "Days between infusions", 21),
        ui.input_numeric("pa_first_infusion_day", "First infusion (day)", 30),
        ui.input_numeric("pa_replicates", "Patients (1: trajectories)", 1, min=1),
        ui.input_numeric("pa_years", "Follow-up (years)", 3),
        ui.input_select("pa_relapse", "Relapse", ["haematologic", "molecular"]),
        ui.input_numeric("pa_seed", "Seed", 0),
        _run_row("pa", "Simulate"), width=330),
        _result("pa")))
    mb = MAX_UPLOAD_BYTES // 2**20
    trial = ui.nav_panel("Trial", ui.layout_sidebar(ui.sidebar(
        ui.input_select("tr_example", "Start from", c["trials"]),
        _upload("tr", f"or upload a spec (TOML, at most {mb} MB)", ".toml"),
        ui.input_numeric("tr_n_per_arm", "Patients per arm", 200, min=1),
        ui.input_numeric("tr_years", "Follow-up (years)", 4, min=0.1),
        ui.input_numeric("tr_seed", "Seed", 0, min=0),
        ui.input_numeric("tr_draws", "Posterior draws for the decision outputs (0: none)", 0,
                         min=0),
        ui.download_button("tr_save", "Save inputs (trial TOML)"),
        _run_row("tr", "Run trial"), width=330),
        ui.h5("Arms"),
        ui.output_ui("tr_arms"),
        ui.input_action_button("tr_arm_add", "Add arm", class_="btn-sm btn-outline-primary"),
        ui.output_ui("tr_check"),
        ui.accordion(ui.accordion_panel(
            "Advanced: the whole spec as TOML (what `ciksim trial FILE.toml` reads)",
            ui.input_text_area("tr_spec", None, rows=14, width="100%", update_on="blur"),
            ui.input_action_button("tr_apply", "Load this TOML into the form",
                                   class_="btn-sm btn-outline-primary")),
            open=False, id="tr_advanced"),
        _result("tr")))
    calibration = ui.nav_panel("Calibration", ui.layout_sidebar(ui.sidebar(
        ui.input_radio_buttons("ca_model", "Model",
                               {"patient": "patient: the in vivo CIK effect",
                                "allo": "allo: alloreactivity after a transplant"}),
        ui.input_radio_buttons("ca_evidence", "Evidence",
                               {"shipped": "shipped (clinical.toml; allo: allo.toml)",
                                "upload": "my evidence TOML"}),
        _upload("ev", f"Evidence TOML ({mb} MB at most)", ".toml"),
        _upload("co", f"Add a cohort (patient model): CSV patient,arm,time_months,event "
                f"({mb} MB)"),
        _upload("st", "and its study design (TOML)", ".toml"),
        ui.input_numeric("ca_particles", "Particles per generation", 20, min=2),
        ui.input_numeric("ca_generations", "Generations (at most)", 2, min=1),
        ui.input_numeric("ca_ppc_draws", "Predictive-check study sets", 20, min=10),
        ui.input_numeric("ca_seed", "Seed", 0, min=0),
        _run_row("ca", "Run calibration"),
        ui.hr(),
        ui.h6("Or the posterior shipped with ciksim for this model"),
        _run_row("po", "Show the shipped posterior"), width=330),
        ui.p("Calibrates the in vivo CIK effect (potency, persistence spread, and each "
             "study's bias terms), or the allo model's alloreactivity, to clinical evidence "
             "by ABC-SMC, as `ciksim calibrate patient` (or `allo`) does. Small settings give "
             "a rough posterior in a few minutes; the shipped one is shown with the settings "
             "it was made with.", class_="text-muted small"),
        _result("ca"), _result("po")))
    allo_name = next(iter(c["allo"]), "")
    opts = c["allo"].get(allo_name, {"donors": {}, "conditionings": {}, "donor": None,
                                     "conditioning": None})
    allo = ui.nav_panel("Allo", ui.layout_sidebar(ui.sidebar(
        ui.input_select("al_scenario", "Scenario", list(c["allo"]), selected=allo_name),
        ui.input_select("al_donor", "Donor", opts["donors"], selected=opts["donor"]),
        ui.input_select("al_conditioning", "Conditioning", opts["conditionings"],
                        selected=opts["conditioning"]),
        ui.input_numeric("al_chimerism", "Donor chimerism on day 0 (0-1; empty: the "
                         "scenario's)", None, min=0, max=1),
        ui.h6("Donor-cell infusions (CD3+ cells/kg; days after the stem-cell infusion, "
              "e.g. 60,90; empty: none)"),
        ui.layout_columns(ui.input_numeric("al_dli_dose", "DLI dose", 10**7),
                          ui.input_text("al_dli_days", "DLI days", ""), col_widths=6),
        ui.layout_columns(ui.input_numeric("al_cik_dose", "CIK dose", 5 * 10**7),
                          ui.input_text("al_cik_days", "CIK days", ""), col_widths=6),
        ui.input_numeric("al_replicates", "Patients (1: one patient's course)", 1, min=1),
        ui.input_numeric("al_years", "Follow-up (years)", 2, min=0.1),
        ui.input_numeric("al_seed", "Seed", 0, min=0),
        _run_row("al", "Simulate"), width=330),
        ui.p("After an allogeneic stem-cell transplant: the recipient's leukemia, the donor's "
             "alloreactive T and CIK cells, host-tissue damage and GvHD, chimerism "
             "(`ciksim patient --scenario allo-aml-cr`). One patient shows its course; many "
             "patients the share with each event by the horizon. Model defaults are not yet "
             "calibrated to the allo evidence: illustrative, not predictions.",
             class_="text-muted small"),
        _result("al")))
    return ui.page_navbar(culture, killing, fit, patient, trial, calibration, allo,
                          title="ciksim", id="page", header=ui.tags.style(_CSS))
