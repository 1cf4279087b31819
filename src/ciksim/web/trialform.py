"""The trial page's form: a spec's arms and main fields as inputs, and back to the spec.

A loaded spec (built-in example, upload or the advanced TOML box) is kept whole; the form
edits its main fields (patients per arm, follow-up, seed, posterior draws) and each arm's
name and CIK schedule (in an allo trial, its donor cells: DLI or CIK, dose, infusions,
interval, first day, escalation, whether immunosuppression is kept; a trigger (``when``)
is kept as written); every other
entry (population, product, delivery, analysis, other arm keys) is carried through
unchanged, so the composed spec is the loaded one with the form's edits. It is validated
by the CLI's schema (:meth:`ciksim.trial.spec.TrialSpec.from_dict`) and saved as the TOML
``ciksim trial`` reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from shiny import ui

from ciksim.errors import DataError

#: An arm's CIK fields: (form key, spec key, label, default).
CIK_FIELDS = (
    ("dose", "dose_per_kg", "CD3+ cells/kg per infusion", 5e7),
    ("infusions", "infusions", "Infusions", 3),
    ("interval", "interval_days", "Days between infusions", 21),
    ("first", "first_day", "First infusion (day)", 30),
)
#: An allo arm's donor cells (``donor_cells``): (form key, spec key, label, default).
DONOR_FIELDS = (
    ("dose", "dose_per_kg", "CD3+ cells/kg per infusion", 1e7),
    ("infusions", "infusions", "Infusions", 1),
    ("interval", "interval_days", "Days between infusions", 28),
    ("first", "first_day", "First infusion (day)", 90),
    ("escalation", "escalation", "Dose factor between infusions", 1),
)
DONOR_CELLS = {"dli": "DLI (donor lymphocytes)", "cik": "donor CIK cells"}
#: Spec keys whose text names a built-in thing or a file; files are refused on the page.
_NAMED = ("scenario", "culture_protocol", "protocol", "target", "effector", "product",
          "source", "donor")
_FILE_KEYS = ("folder", "product_folder", "path", "file", "run_folder", "release_data")


def no_paths(data: Any, where: str = "spec") -> None:
    """Refuse spec entries that would make the server read one of its files."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k in _FILE_KEYS:
                raise DataError(f"{where}.{k}: files on the server cannot be used from the "
                                "web page; use a built-in name (e.g. a culture protocol)")
            if k in _NAMED and isinstance(v, str) and (
                    "/" in v or "\\" in v or v.lower().endswith((".toml", ".csv",
                                                                 ".parquet"))):
                raise DataError(f"{where}.{k}: {v!r} is a file; the web page takes built-in "
                                "names only")
            no_paths(v, f"{where}.{k}")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            no_paths(v, f"{where}[{i}]")


def number(value: Any, label: str, *, whole: bool = False, optional: bool = False) -> Any:
    """A numeric input's value; DataError naming ``label`` when empty or not whole."""
    if value is None or value == "":
        if optional:
            return None
        raise DataError(f"{label}: give a number")
    if whole:
        if float(value) != int(value):
            raise DataError(f"{label}: give a whole number, not {value!r}")
        return int(value)
    return float(value)


def main_values(data: dict[str, Any]) -> dict[str, Any]:
    """The form's main fields as the spec gives them (the schema's defaults otherwise)."""
    return {"tr_n_per_arm": data.get("patients_per_arm", 1000),
            "tr_years": data.get("follow_up_years", 4.0),
            "tr_seed": data.get("seed", 0),
            "tr_draws": (data.get("posterior") or {}).get("draws", 200)}


def is_allo(data: dict[str, Any]) -> bool:
    """Whether the spec's population is a built-in allo scenario (an allo trial)."""
    from ciksim.data import builtin_names

    scenario = (data.get("population") or {}).get("scenario")
    return isinstance(scenario, str) and scenario in builtin_names("allo")


def new_arm(n: int, allo: bool) -> dict[str, Any]:
    """Arm ``n`` (0-based) added by the form: CIK (or, allo, DLI) at the default schedule."""
    if allo:
        return {"name": f"arm {n + 1}",
                "donor_cells": {"cells": "dli", **{spec: default for _, spec, _, default
                                                   in DONOR_FIELDS}}}
    return {"name": f"arm {n + 1}",
            "cik": {spec: default for _, spec, _, default in CIK_FIELDS}}


def arm_card(i: int, arm: dict[str, Any], allo: bool = False) -> Any:
    """The inputs of arm ``i`` (ids ``tr_arm{i}_name``, ``_cik`` or ``_donor``, ``_dose``
    ...); ``allo``: donor cells instead of CIK after chemotherapy."""
    remove = ui.tags.button(
        "Remove arm", type="button", id=f"tr_arm{i}_remove",
        class_="btn btn-sm btn-outline-secondary",
        onclick=f"Shiny.setInputValue('tr_arm_remove', {i}, {{priority: 'event'}})")
    name = ui.input_text(f"tr_arm{i}_name", "Name", arm.get("name") or f"arm {i + 1}")
    if allo:
        cells = arm.get("donor_cells") if isinstance(arm.get("donor_cells"), dict) else None
        when = (cells or {}).get("when")
        fields = [ui.input_numeric(f"tr_arm{i}_{key}", label,
                                   _shown((cells or {}).get(spec, default)))
                  for key, spec, label, default in DONOR_FIELDS
                  if not (spec == "first_day" and when is not None)]
        note = None
        if isinstance(when, dict):
            side = "above" if "above" in when else "below"
            note = ui.p(f"given when {when.get('watch')} is {side} {when.get(side)} (the "
                        "trigger as written in the spec; edit it as TOML)",
                        class_="text-muted small")
        return ui.card(
            ui.card_header(f"Arm {i + 1}"), name,
            ui.input_checkbox(f"tr_arm{i}_donor", "Donor cells (off: transplant alone)",
                              cells is not None),
            ui.input_select(f"tr_arm{i}_cells", "Cells", DONOR_CELLS,
                            selected=(cells or {}).get("cells", "dli")),
            ui.layout_columns(*fields, col_widths=2), note,
            ui.input_checkbox(f"tr_arm{i}_keepis", "Keep immunosuppression (off: withdrawn "
                              "on the day of the first infusion, as in practice)",
                              (cells or {}).get("immunosuppression") == "kept"),
            ui.div(remove), class_="ciksim-arm", id=f"tr_arm{i}")
    cik = arm.get("cik") if isinstance(arm.get("cik"), dict) else None
    fields = [ui.input_numeric(f"tr_arm{i}_{key}", label,
                               _shown((cik or {}).get(spec, default)))
              for key, spec, label, default in CIK_FIELDS]
    return ui.card(
        ui.card_header(f"Arm {i + 1}"), name,
        ui.input_checkbox(f"tr_arm{i}_cik", "CIK infusions (off: chemotherapy alone)",
                          cik is not None),
        ui.layout_columns(*fields, col_widths=3),
        ui.div(remove), class_="ciksim-arm", id=f"tr_arm{i}")


def _shown(value: Any) -> Any:
    """A whole float as an int (the box shows 50000000, not 50000000.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def arms_from_inputs(read: Callable[[str], Any], arms: list[dict[str, Any]],
                     allo: bool = False) -> list[dict[str, Any]]:
    """``arms`` with the form's values (``read(id)`` gives an input's value) written in;
    other keys of each arm are kept. Missing numbers raise DataError naming the arm."""
    out = []
    for i, old in enumerate(arms):
        arm = copy.deepcopy(old)
        name = read(f"tr_arm{i}_name")
        arm["name"] = str(name).strip() if name is not None else old.get("name")
        key, fields = ("donor_cells", DONOR_FIELDS) if allo else ("cik", CIK_FIELDS)
        if read(f"tr_arm{i}_{'donor' if allo else 'cik'}"):
            given = dict(arm.get(key) or {})
            if allo:
                given["cells"] = read(f"tr_arm{i}_cells") or given.get("cells", "dli")
                keep = read(f"tr_arm{i}_keepis")
                if keep:
                    given["immunosuppression"] = "kept"
                elif keep is not None:
                    given.pop("immunosuppression", None)  # the default: withdrawn
            for form, spec, label, _ in fields:
                if spec == "first_day" and given.get("when") is not None:
                    continue
                given[spec] = number(read(f"tr_arm{i}_{form}"), f"arms[{i}].{key}.{spec} "
                                     f"({label})", whole=spec == "infusions")
            arm[key] = given
        else:
            arm.pop(key, None)
        out.append(arm)
    return out


def compose(base: dict[str, Any], arms: list[dict[str, Any]], main: dict[str, Any]
            ) -> dict[str, Any]:
    """The spec: ``base`` with the form's arms and main fields (``main_values`` keys)."""
    data = copy.deepcopy(base)
    data["patients_per_arm"] = number(main["tr_n_per_arm"], "patients_per_arm", whole=True)
    data["follow_up_years"] = number(main["tr_years"], "follow_up_years")
    data["seed"] = number(main["tr_seed"], "seed", whole=True)
    draws = number(main["tr_draws"], "posterior.draws", whole=True)
    data["posterior"] = {**(data.get("posterior") or {}), "draws": draws}
    data["arms"] = arms
    return data


def check(data: dict[str, Any], origin: str = "specification") -> Any:
    """The spec validated as the CLI validates it (a TrialSpec), refusing server files."""
    from ciksim.trial.spec import TrialSpec

    no_paths(data)
    return TrialSpec.from_dict(data, origin=origin)


def to_toml(data: dict[str, Any]) -> str:
    """The spec as the TOML ``ciksim trial FILE.toml`` reads."""
    import tomli_w

    return ("# ciksim trial spec saved by the web page; run it with: ciksim trial FILE.toml\n"
            + tomli_w.dumps(data))


def parse(text: str, origin: str) -> dict[str, Any]:
    """A spec's TOML text parsed by the CLI's reader and checked by its schema."""
    from ciksim.schemas import parse_toml

    data = parse_toml(text, origin=origin)
    check(data, origin)
    return data
