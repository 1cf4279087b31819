"""The trial page's form: a spec's arms and main fields as inputs, and back to the spec.

A loaded spec (built-in example, upload or the advanced TOML box) is kept whole; the form
edits its main fields (patients per arm, follow-up, seed, posterior draws) and each arm's
name and CIK schedule; every other entry (population, product, delivery, analysis, other
arm keys) is carried through unchanged, so the composed spec is the loaded one with the
form's edits. It is validated by the CLI's schema (:meth:`ciksim.trial.spec.TrialSpec.
from_dict`) and saved as the TOML ``ciksim trial`` reads.
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


def arm_card(i: int, arm: dict[str, Any]) -> Any:
    """The inputs of arm ``i`` (ids ``tr_arm{i}_name``, ``_cik``, ``_dose`` ...)."""
    cik = arm.get("cik") if isinstance(arm.get("cik"), dict) else None
    fields = [ui.input_numeric(f"tr_arm{i}_{key}", label,
                               _shown((cik or {}).get(spec, default)))
              for key, spec, label, default in CIK_FIELDS]
    remove = ui.tags.button(
        "Remove arm", type="button", id=f"tr_arm{i}_remove",
        class_="btn btn-sm btn-outline-secondary",
        onclick=f"Shiny.setInputValue('tr_arm_remove', {i}, {{priority: 'event'}})")
    return ui.card(
        ui.card_header(f"Arm {i + 1}"),
        ui.input_text(f"tr_arm{i}_name", "Name", arm.get("name") or f"arm {i + 1}"),
        ui.input_checkbox(f"tr_arm{i}_cik", "CIK infusions (off: chemotherapy alone)",
                          cik is not None),
        ui.layout_columns(*fields, col_widths=3),
        ui.div(remove), class_="ciksim-arm", id=f"tr_arm{i}")


def _shown(value: Any) -> Any:
    """A whole float as an int (the box shows 50000000, not 50000000.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def arms_from_inputs(read: Callable[[str], Any], arms: list[dict[str, Any]]
                     ) -> list[dict[str, Any]]:
    """``arms`` with the form's values (``read(id)`` gives an input's value) written in;
    other keys of each arm are kept. Missing numbers raise DataError naming the arm."""
    out = []
    for i, old in enumerate(arms):
        arm = copy.deepcopy(old)
        name = read(f"tr_arm{i}_name")
        arm["name"] = str(name).strip() if name is not None else old.get("name")
        if read(f"tr_arm{i}_cik"):
            cik = dict(arm.get("cik") or {})
            for key, spec, label, _ in CIK_FIELDS:
                cik[spec] = number(read(f"tr_arm{i}_{key}"), f"arms[{i}].cik.{spec} ({label})",
                                   whole=spec == "infusions")
            arm["cik"] = cik
        else:
            arm.pop("cik", None)
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
