"""The Shiny server: gathers each page's inputs, runs the job in a worker process, shows the
job's summary and figures, and offers its files for download (each table as CSV or Parquet,
each figure as PNG or SVG, the HTML report, all files as a zip, the inputs as TOML)."""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from shiny import App, Inputs, Outputs, Session, reactive, render, ui
from shiny.types import SilentException

from ciksim.errors import CikError
from ciksim.schemas import Format, formats
from ciksim.web import trialform
from ciksim.web.inputs import Upload, gather
from ciksim.web.pages import CANCEL, SLOTS, allo_options, page_ui
from ciksim.web.session import SessionFiles, limit_uploads
from ciksim.web.summaries import SHOW
from ciksim.web.worker import Job

#: Upload slots and the registered input format of their file (``ciksim schema``): an upload
#: is checked by that format's reader, the code that reads the CLI's file of the format (the
#: evidence slot's is allo-evidence while the calibration page's model is allo).
UPLOADS = {"ly": "lysis", "fi": "counts", "tr": "trial", "ev": "evidence", "co": "cohort",
           "st": "study"}
_GENERATION = re.compile(r"generation (-?\d+): (\d+)/(\d+)")


def make_app(root: Path | None = None) -> Any:
    """The ASGI app; each session works in its own folder under ``root`` (default: a new
    temporary folder)."""
    base = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="ciksim-web-"))

    def server(input: Inputs, output: Outputs, session: Session) -> None:
        files = SessionFiles(base)
        jobs: dict[str, Job] = {}
        saved: dict[str, tuple[str, dict[str, Any]]] = {}
        uploads: dict[str, Upload] = {}
        errors = {k: reactive.value("") for k in SLOTS}
        upload_errors = {k: reactive.value("") for k in UPLOADS}
        ticks = {k: reactive.value(0) for k in SLOTS}
        spec_base: reactive.Value[dict[str, Any]] = reactive.value({})
        arms: reactive.Value[list[dict[str, Any]]] = reactive.value([])
        form_error = reactive.value("")  # why the advanced TOML was not loaded

        def end() -> None:
            for job in jobs.values():
                job.cancel()
            files.close()

        session.on_ended(end)

        def read(name: str) -> Any:
            """An input's value; None while it is not bound yet."""
            try:
                return input[name]()
            except SilentException:
                return None

        def scrub(message: str) -> str:
            """A message with kept uploads named as the user named them."""
            for path, name in uploads.values():
                message = message.replace(str(path), name)
            return message.replace(f"{files.path}/", "")

        # ---- the trial form ------------------------------------------------------------
        def load_spec(data: dict[str, Any], text: str) -> None:
            spec_base.set(data)
            arms.set([dict(a) for a in data.get("arms", [])])
            for key, value in trialform.main_values(data).items():
                ui.update_numeric(key, value=value)
            ui.update_text_area("tr_spec", value=text)
            form_error.set("")

        @reactive.calc
        def allo() -> bool:
            return trialform.is_allo(spec_base())

        def composed() -> dict[str, Any]:
            current = trialform.arms_from_inputs(read, arms(), allo())
            main = {k: read(k) for k in trialform.main_values({})}
            return trialform.compose(spec_base(), current, main)

        def trial_spec() -> Path:
            data = composed()
            trialform.check(data)
            text = trialform.to_toml(data)
            ui.update_text_area("tr_spec", value=text)
            return files.keep_text(text, "trial-spec.toml")

        @reactive.effect
        def _example() -> None:
            from ciksim.data import builtin_names

            name = input.tr_example()
            if name not in builtin_names("trials"):  # a name from the page, never a path
                return
            text = (resources.files("ciksim.data") / "trials" / f"{name}.toml").read_text(
                encoding="utf-8")
            load_spec(trialform.parse(text, f"{name}.toml"), text)

        @reactive.effect
        @reactive.event(input.tr_apply)
        def _apply() -> None:
            text = input.tr_spec()
            try:
                load_spec(trialform.parse(text, "specification"), text)
            except CikError as exc:
                form_error.set(str(exc))

        def edit_arms(change: Callable[[list[dict[str, Any]]], None]) -> None:
            try:
                current = trialform.arms_from_inputs(read, arms(), allo())
            except CikError:  # a missing number: the live check below the arms says which
                return
            change(current)
            arms.set(current)

        @reactive.effect
        @reactive.event(input.tr_arm_add)
        def _add() -> None:
            def add(current: list[dict[str, Any]]) -> None:
                current.append(trialform.new_arm(len(current), allo()))
            edit_arms(add)

        @reactive.effect
        @reactive.event(input.tr_arm_remove)
        def _remove() -> None:
            index = input.tr_arm_remove()

            def remove(current: list[dict[str, Any]]) -> None:
                if isinstance(index, int) and 0 <= index < len(current) and len(current) > 1:
                    del current[index]
            edit_arms(remove)

        @output(id="tr_arms")
        @render.ui
        def _arms() -> Any:
            return ui.div(*[trialform.arm_card(i, a, allo()) for i, a in enumerate(arms())])

        @output(id="tr_check")
        @render.ui
        def _check() -> Any:
            applied = (ui.div(f"not loaded: {form_error()}", class_="ciksim-error",
                              role="alert") if form_error() else None)
            try:
                spec = trialform.check(composed())
            except CikError as exc:
                return ui.div(applied, ui.div(str(exc), class_="ciksim-error", role="alert"))
            return ui.div(applied, ui.div(f"valid spec: {len(spec.arms)} arms x "
                                          f"{spec.patients_per_arm} patients, "
                                          f"{spec.follow_up_years:g} years, "
                                          f"{spec.posterior.get('draws', 0)} draws",
                                          class_="ciksim-valid"))

        @output(id="tr_save")
        @render.download_button(filename="trial.toml")
        def _save() -> Any:
            return str(trial_spec())

        @reactive.effect
        @reactive.event(input.al_scenario, ignore_init=True)
        def _allo_options() -> None:
            opts = allo_options(input.al_scenario())
            ui.update_select("al_donor", choices=opts["donors"], selected=opts["donor"])
            ui.update_select("al_conditioning", choices=opts["conditionings"],
                             selected=opts["conditioning"])

        # ---- jobs ----------------------------------------------------------------------
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
                    name, inputs = gather(key, input, uploads.get, trial_spec)
                except CikError as exc:
                    jobs.pop(key, None)
                    errors[key].set(scrub(str(exc)))
                    ticks[key].set(ticks[key].get() + 1)
                    return
                saved[key] = (name, inputs)
                jobs[key] = Job(name, inputs, files.job_dir(key))
                ticks[key].set(ticks[key].get() + 1)

            @reactive.effect
            def _poll() -> None:
                ticks[key]()
                job = jobs.get(key)
                if job is None or job.state != "running":
                    return
                reactive.invalidate_later(0.3)
                before = (job.state, job.progress, job.line)
                if (job.poll(), job.progress, job.line) != before:
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
                    return ui.div(scrub(job.error), class_="ciksim-error", role="alert")
                if job.state == "cancelled":
                    return ui.div("cancelled", class_="ciksim-cancelled")
                if job.state == "done":
                    return ui.div("done", class_="ciksim-done")
                share, label = _progress(job)
                return ui.div(ui.div(ui.div(label, class_="progress-bar progress-bar-striped "
                                            "progress-bar-animated", role="progressbar",
                                            style=f"width: {100 * share:.0f}%"),
                                     class_="progress", style="height: 1.4em"),
                              class_="ciksim-running")

            @output(id=f"{key}_result")
            @render.ui
            def _result() -> Any:
                ticks[key]()
                job = jobs.get(key)
                if job is None or job.state != "done":
                    return None
                figures = _named(job, ".png")
                images = [ui.img(src=_data_uri(job.out / f"{f}.png"), alt=f"{job_name} {f}")
                          for f in figures]
                return ui.div(SHOW[job.name](job.summary), *images,
                              _downloads(key, _named(job, ".parquet"), figures),
                              id=f"{key}_done")

            def chosen(kind: str, suffix: str) -> str:
                """The table or figure picked on the page (one the job wrote)."""
                job = jobs[key]
                names = _named(job, suffix)
                pick = read(f"{key}_{kind}")
                return pick if pick in names else (names[0] if names else figure)

            def download(kind: str, filename: Callable[[], str]) -> None:
                @output(id=f"{key}_dl_{kind}")
                @render.download_button(filename=filename)
                def _dl() -> Any:
                    job = jobs[key]
                    if kind in ("png", "svg"):
                        return str(job.out / f"{chosen('figure', '.png')}.{kind}")
                    if kind == "parquet":
                        return str(job.out / f"{chosen('table', '.parquet')}.parquet")
                    if kind == "csv":
                        table = chosen("table", ".parquet")
                        dest = files.path / f"{key}-table.csv"
                        _csv(job.out / f"{table}.parquet", dest)
                        return str(dest)
                    if kind == "html":
                        return str(job.out / "report.html")
                    if kind == "zip":
                        return str(_zip(job, read(f"{key}_fmt") or "csv",
                                        files.path / f"{key}-files.zip"))
                    return str(files.keep_text(_inputs_text(*saved[key], uploads),
                                               f"{key}-inputs.toml"))

            download("png", lambda: f"{chosen('figure', '.png')}.png")
            download("svg", lambda: f"{chosen('figure', '.png')}.svg")
            download("csv", lambda: f"{chosen('table', '.parquet')}.csv")
            download("parquet", lambda: f"{chosen('table', '.parquet')}.parquet")
            download("html", lambda: f"ciksim-{job_name}-report.html")
            download("zip", lambda: f"ciksim-{job_name}.zip")
            download("toml", lambda: "trial.toml" if key == "tr" else f"{job_name}.toml")

        for k in SLOTS:
            register(k)

        def cancel(key: str) -> None:
            @reactive.effect
            @reactive.event(input[f"{key}_cancel"])
            def _cancel() -> None:
                job = jobs.get(key)
                if job is not None and job.state == "running":
                    job.cancel()
                    ticks[key].set(ticks[key].get() + 1)

        for k in CANCEL:
            cancel(k)

        # ---- uploads -------------------------------------------------------------------
        def upload_format(key: str) -> Format:
            """The registered format of slot ``key``'s upload."""
            name = UPLOADS[key]
            if key == "ev" and input.ca_model() == "allo":
                name = "allo-evidence"
            return formats()[name]

        def take(key: str, path: Path, name: str) -> None:
            """Check a kept upload with its format's reader; a trial spec also fills the
            trial form (parsed and checked as the CLI checks it, see ``trialform.parse``)."""
            if key == "tr":
                from ciksim.schemas import read_text

                text = read_text(path, what="trial spec", origin=name)
                load_spec(trialform.parse(text, name), text)
                return
            upload_format(key).reader(path)
            if key == "ev":
                ui.update_radio_buttons("ca_evidence", selected="upload")

        def upload_check(key: str) -> None:
            @reactive.effect
            @reactive.event(input[f"{key}_file"])
            def _got() -> None:
                infos = input[f"{key}_file"]()
                uploads.pop(key, None)
                upload_errors[key].set("")
                if not infos:
                    return
                path = None
                try:
                    suffix = f".{upload_format(key).kind}"
                    path, name = files.keep_upload(infos[0], key, suffix)
                    take(key, path, name)
                except CikError as exc:
                    message = str(exc)
                    if path is not None:
                        message = message.replace(str(path), name)
                    upload_errors[key].set(message)
                    return
                uploads[key] = (path, name)

            @output(id=f"{key}_upload_msg")
            @render.ui
            def _msg() -> Any:
                if upload_errors[key]():
                    return ui.div(upload_errors[key](), class_="ciksim-error", role="alert")
                return None

        for key in UPLOADS:
            upload_check(key)

    return limit_uploads(App(page_ui(), server))


def _named(job: Job, suffix: str) -> list[str]:
    """Names (without suffix) of the job's files ending in ``suffix``: those its result
    wrote, then any other in its folder (a calibration's posterior)."""
    written = [f for f in job.files if "/" not in f]
    present = sorted(p.name for p in job.out.glob(f"*{suffix}")) if job.out.is_dir() else []
    names = [f for f in written if f.endswith(suffix)]
    names += [f for f in present if f not in names]
    return [f[: -len(suffix)] for f in names]


def _downloads(key: str, tables: list[str], figures: list[str]) -> Any:
    """The result's download controls: a table, a figure, the report, all, the inputs."""
    row: list[Any] = []
    if tables:
        row += [ui.input_select(f"{key}_table", "Table", tables, width="14em"),
                ui.download_button(f"{key}_dl_csv", "CSV"),
                ui.download_button(f"{key}_dl_parquet", "Parquet"), ui.br()]
    if figures:
        row += [ui.input_select(f"{key}_figure", "Figure", figures, width="14em"),
                ui.download_button(f"{key}_dl_png", "PNG"),
                ui.download_button(f"{key}_dl_svg", "SVG"), ui.br()]
    row += [ui.download_button(f"{key}_dl_html", "Report HTML"),
            ui.input_select(f"{key}_fmt", None, {"csv": "tables as CSV",
                                                 "parquet": "tables as Parquet"},
                            width="12em"),
            ui.download_button(f"{key}_dl_zip", "All files (.zip)"),
            ui.download_button(f"{key}_dl_toml", "Inputs TOML")]
    return ui.div(*row, class_="ciksim-downloads")


def _progress(job: Job) -> tuple[float, str]:
    """(share done, label) of a running job: patients of a trial, generations of a
    calibration (from its progress line)."""
    done, total = job.progress
    if total:
        return done / total, f"{done} of {total} patients"
    m = _GENERATION.search(job.line)
    if m:
        generations = int(job.inputs.get("generations", 1))
        t, accepted, n = (int(g) for g in m.groups())
        return min(1.0, (t + 1 + accepted / max(n, 1)) / (generations + 1.1)), job.line
    if job.line:
        return 0.97, job.line
    if job.name.endswith("calibration"):
        return 0.03, "starting ..."
    return 1.0, "running ..."


def _csv(parquet: Path, dest: Path) -> None:
    import pandas as pd

    pd.read_parquet(parquet).to_csv(dest, index=False)


def _zip(job: Job, fmt: str, dest: Path) -> Path:
    """All the job's files in a zip; its tables as CSV when ``fmt`` is csv."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(p for p in job.out.rglob("*") if p.is_file()):
            rel = path.relative_to(job.out)
            if fmt == "csv" and path.suffix == ".parquet" and rel.parent == Path("."):
                import pandas as pd

                z.writestr(str(rel.with_suffix(".csv")),
                           pd.read_parquet(path).to_csv(index=False))
            else:
                z.write(path, str(rel))
    return dest


def _inputs_text(name: str, inputs: dict[str, Any], uploads: dict[str, Upload]) -> str:
    """The inputs as the TOML the CLI reads: the trial spec itself, or a ``ciksim rerun``
    file whose uploaded files are named as the user named them (keep them side by side)."""
    from ciksim.jobs.registry import PATH_INPUTS, inputs_toml

    if name == "trial":
        return Path(inputs["spec"]).read_text(encoding="utf-8")
    names = {str(path): shown for path, shown in uploads.values()}
    values = {k: v for k, v in inputs.items() if k != "origin"}
    for key in PATH_INPUTS:
        if key in values:
            values[key] = names.get(str(values[key]), Path(str(values[key])).name)
    return inputs_toml(name, values)


def _data_uri(path: Path) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
