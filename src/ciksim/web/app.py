"""The Shiny server: gathers each page's inputs, runs the job in a worker process, shows the
job's summary and figure, and offers its files for download."""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shiny import App, Inputs, Outputs, Session, reactive, render, ui

from ciksim.errors import CikError, DataError
from ciksim.web.pages import SLOTS, page_ui
from ciksim.web.session import SessionFiles, limit_uploads
from ciksim.web.summaries import SHOW
from ciksim.web.worker import Job

#: Spec keys whose text names a built-in thing or a file; files are refused on the page.
_NAMED = ("scenario", "culture_protocol", "protocol", "target", "effector", "product",
          "source")
_FILE_KEYS = ("folder", "product_folder", "path", "file")


def _no_paths(data: Any, where: str = "spec") -> None:
    """Refuse spec entries that would make the server read one of its files."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k in _FILE_KEYS:
                raise DataError(f"{where}.{k}: files on the server cannot be used from the "
                                "web page; use a built-in name (e.g. a culture protocol)")
            if k in _NAMED and isinstance(v, str) and (
                    "/" in v or "\\" in v or v.lower().endswith((".toml", ".csv"))):
                raise DataError(f"{where}.{k}: {v!r} is a file; the web page takes built-in "
                                "names only")
            _no_paths(v, f"{where}.{k}")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _no_paths(v, f"{where}[{i}]")


def _number(value: Any, label: str, *, whole: bool = False, optional: bool = False) -> Any:
    if value is None or value == "":
        if optional:
            return None
        raise DataError(f"{label}: give a number")
    if whole:
        if float(value) != int(value):
            raise DataError(f"{label}: give a whole number, not {value!r}")
        return int(value)
    return float(value)


def make_app(root: Path | None = None) -> Any:
    """The ASGI app; each session works in its own folder under ``root`` (default: a new
    temporary folder)."""
    base = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="ciksim-web-"))

    def server(input: Inputs, output: Outputs, session: Session) -> None:
        files = SessionFiles(base)
        jobs: dict[str, Job] = {}
        saved: dict[str, tuple[str, dict[str, Any]]] = {}
        uploads: dict[str, tuple[Path, str]] = {}
        errors = {k: reactive.value("") for k in SLOTS}
        upload_errors = {k: reactive.value("") for k in ("ly", "fi", "tr")}
        ticks = {k: reactive.value(0) for k in SLOTS}

        def end() -> None:
            for job in jobs.values():
                job.cancel()
            files.close()

        session.on_ended(end)

        def upload(key: str) -> tuple[Path, str]:
            if key not in uploads:
                raise DataError("upload a CSV file first")
            return uploads[key]

        def gather(key: str) -> tuple[str, dict[str, Any]]:
            i = input
            if key == "cu":
                if not i.cu_protocols():
                    raise DataError("protocols: choose at least one")
                return "culture", {
                    "protocols": list(i.cu_protocols()),
                    "days": _number(i.cu_days(), "days", optional=True),
                    "donors": _number(i.cu_donors(), "donors", whole=True),
                    "seed": _number(i.cu_seed(), "seed", whole=True),
                    "start_cells": _number(i.cu_start_cells(), "start_cells")}
            if key == "pl":
                return "harvest-plan", {
                    "protocol": (list(i.cu_protocols()) or ["cik-standard"])[0],
                    "dose": _number(i.pl_dose(), "dose"), "per": i.pl_per(),
                    "weight": _number(i.pl_weight(), "weight"),
                    "infusions": _number(i.pl_infusions(), "infusions", whole=True),
                    "cells": i.pl_cells(),
                    "days": _number(i.cu_days(), "days", optional=True),
                    "donors": _number(i.cu_donors(), "donors", whole=True),
                    "seed": _number(i.cu_seed(), "seed", whole=True),
                    "start_cells": _number(i.cu_start_cells(), "start_cells")}
            if key == "ki":
                from ciksim.jobs.killing import parse_ratios

                return "killing", {
                    "effector": i.ki_effector(), "target": i.ki_target(),
                    "et": parse_ratios(i.ki_et()), "hours": _number(i.ki_hours(), "hours"),
                    "block": i.ki_block() or None,
                    "donors": _number(i.ki_donors(), "donors", whole=True),
                    "seed": _number(i.ki_seed(), "seed", whole=True)}
            if key == "ly":
                path, name = upload("ly")
                return "lysis", {
                    "path": str(path), "origin": name,
                    "targets_per_well": _number(i.ly_targets_per_well(), "targets per well"),
                    "hours": _number(i.ly_hours(), "hours")}
            if key == "fi":
                path, name = upload("fi")
                return "fit-culture", {
                    "path": str(path), "origin": name, "protocol": i.fi_protocol(),
                    "dose": _number(i.fi_dose(), "dose", optional=True), "cells": i.fi_cells(),
                    "steps": _number(i.fi_steps(), "steps", whole=True),
                    "walkers": _number(i.fi_walkers(), "walkers", whole=True),
                    "seed": _number(i.fi_seed(), "seed", whole=True)}
            if key == "pa":
                return "patient", {
                    "scenario": i.pa_scenario(), "subtype": i.pa_subtype() or None,
                    "cik": bool(i.pa_cik()), "cik_dose": _number(i.pa_cik_dose(), "cik dose"),
                    "infusions": _number(i.pa_infusions(), "infusions", whole=True),
                    "interval": _number(i.pa_interval(), "interval"),
                    "first_infusion_day": _number(i.pa_first_infusion_day(),
                                                  "first infusion day"),
                    "replicates": _number(i.pa_replicates(), "patients", whole=True),
                    "years": _number(i.pa_years(), "years"), "relapse": i.pa_relapse(),
                    "seed": _number(i.pa_seed(), "seed", whole=True)}
            from ciksim.trial.spec import TrialSpec

            text = i.tr_spec()
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise DataError(f"specification: not valid TOML ({exc})") from None
            _no_paths(data)
            n = _number(i.tr_n_per_arm(), "patients per arm", whole=True, optional=True)
            draws = _number(i.tr_draws(), "posterior draws", whole=True, optional=True)
            if n is not None or draws is not None:
                import tomli_w

                if n is not None:
                    data["patients_per_arm"] = n
                if draws is not None:
                    data.setdefault("posterior", {})["draws"] = draws
                text = tomli_w.dumps(data)
            TrialSpec.from_dict(data, origin="specification")
            spec = files.keep_text(text, "trial-spec.toml")
            return "trial", {"spec": str(spec), "workers": 1}

        def register(key: str) -> None:
            job_name, figure = SLOTS[key]

            @reactive.effect
            @reactive.event(input[f"{key}_run"])
            def _start() -> None:
                old = jobs.get(key)
                if old is not None:
                    old.cancel()
                errors[key].set("")
                try:
                    name, inputs = gather(key)
                except CikError as exc:
                    jobs.pop(key, None)
                    errors[key].set(str(exc))
                    ticks[key].set(ticks[key].get() + 1)
                    return
                saved[key] = (name, inputs)
                jobs[key] = Job(name, inputs, files.job_dir(key), input[f"{key}_fmt"]())
                ticks[key].set(ticks[key].get() + 1)

            @reactive.effect
            def _poll() -> None:
                ticks[key]()
                job = jobs.get(key)
                if job is None or job.state != "running":
                    return
                reactive.invalidate_later(0.3)
                before = (job.state, job.progress)
                if (job.poll(), job.progress) != before:
                    ticks[key].set(ticks[key].get() + 1)

            @output(id=f"{key}_status")
            @render.ui
            def _status() -> Any:
                ticks[key]()
                if errors[key]():
                    return ui.div(errors[key](), class_="ciksim-error", role="alert")
                job = jobs.get(key)
                if job is None:
                    return None
                if job.state == "error":
                    return ui.div(job.error, class_="ciksim-error", role="alert")
                if job.state == "cancelled":
                    return ui.div("cancelled", class_="ciksim-cancelled")
                if job.state == "done":
                    return ui.div("done", class_="ciksim-done")
                done, total = job.progress
                pct = 100 * done / total if total else 100
                label = f"{done} of {total} patients" if total else "running ..."
                return ui.div(ui.div(ui.div(label, class_="progress-bar progress-bar-striped "
                                            "progress-bar-animated", role="progressbar",
                                            style=f"width: {pct:.0f}%"),
                                     class_="progress", style="height: 1.4em"),
                              class_="ciksim-running")

            @output(id=f"{key}_result")
            @render.ui
            def _result() -> Any:
                ticks[key]()
                job = jobs.get(key)
                if job is None or job.state != "done":
                    return None
                buttons = [ui.download_button(f"{key}_dl_{kind}", label) for kind, label in
                           (("png", "Figure PNG"), ("svg", "Figure SVG"),
                            ("html", "Report HTML"), ("zip", "All files (.zip)"),
                            ("toml", "Inputs TOML"))]
                return ui.div(SHOW[job_name](job.summary),
                              ui.img(src=_data_uri(job.out / f"{figure}.png"),
                                     alt=f"{job_name} figure"),
                              ui.div(*buttons, class_="ciksim-downloads"),
                              id=f"{key}_done")

            def download(kind: str, filename: Callable[[], str]) -> None:
                @output(id=f"{key}_dl_{kind}")
                @render.download_button(filename=filename)
                def _dl() -> Any:
                    job = jobs[key]
                    if kind == "png":
                        return str(job.out / f"{figure}.png")
                    if kind == "svg":
                        return str(job.out / f"{figure}.svg")
                    if kind == "html":
                        return str(job.out / "report.html")
                    if kind == "zip":
                        return shutil.make_archive(str(job.out), "zip", job.out)
                    return str(files.keep_text(_inputs_text(*saved[key]),
                                               f"{key}-inputs.toml"))

            download("png", lambda: f"{figure}.png")
            download("svg", lambda: f"{figure}.svg")
            download("html", lambda: f"ciksim-{job_name}-report.html")
            download("zip", lambda: f"ciksim-{job_name}.zip")
            download("toml", lambda: "trial.toml" if key == "tr" else f"{job_name}.toml")

        for k in SLOTS:
            register(k)

        def upload_check(key: str, suffix: str, validate: Callable[[Path, str], None]) -> None:
            @reactive.effect
            @reactive.event(input[f"{key}_file"])
            def _got() -> None:
                infos = input[f"{key}_file"]()
                uploads.pop(key, None)
                upload_errors[key].set("")
                if not infos:
                    return
                try:
                    path, name = files.keep_upload(infos[0], key, suffix)
                    validate(path, name)
                except CikError as exc:
                    upload_errors[key].set(str(exc))
                    return
                uploads[key] = (path, name)

            @output(id=f"{key}_upload_msg")
            @render.ui
            def _msg() -> Any:
                if upload_errors[key]():
                    return ui.div(upload_errors[key](), class_="ciksim-error", role="alert")
                return None

        def check_lysis(path: Path, name: str) -> None:
            from ciksim.assays.lysis import LysisData

            LysisData.read_csv(path, origin=name)

        def check_counts(path: Path, name: str) -> None:
            from ciksim.inference.culture import CultureData

            CultureData.read_csv(path, origin=name)

        def take_spec(path: Path, name: str) -> None:
            text = path.read_text(encoding="utf-8")
            try:
                tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise DataError(f"{name}: not valid TOML ({exc})") from None
            ui.update_text_area("tr_spec", value=text)

        upload_check("ly", ".csv", check_lysis)
        upload_check("fi", ".csv", check_counts)
        upload_check("tr", ".toml", take_spec)

        @reactive.effect
        def _example() -> None:
            from importlib import resources

            name = input.tr_example()
            text = (resources.files("ciksim.data") / "trials" / f"{name}.toml").read_text(
                encoding="utf-8")
            ui.update_text_area("tr_spec", value=text)

        @reactive.effect
        @reactive.event(input.tr_cancel)
        def _cancel() -> None:
            job = jobs.get("tr")
            if job is not None and job.state == "running":
                job.cancel()
                ticks["tr"].set(ticks["tr"].get() + 1)

    return limit_uploads(App(page_ui(), server))


def _inputs_text(name: str, inputs: dict[str, Any]) -> str:
    """The inputs as the TOML the CLI reads: the trial spec itself, or a ``ciksim rerun``
    file whose uploaded file is named as the user named it (keep the two side by side)."""
    from ciksim.jobs.registry import inputs_toml

    if name == "trial":
        return Path(inputs["spec"]).read_text(encoding="utf-8")
    values = dict(inputs)
    if "path" in values:
        values["path"] = values.pop("origin")
    return inputs_toml(name, values)


def _data_uri(path: Path) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
