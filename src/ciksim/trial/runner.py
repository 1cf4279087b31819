"""Run a trial in chunks of patients: in this process, local worker processes or Dask.

Each chunk is a pure function of (spec, arm, first patient, last patient): patient ``i`` of
arm ``a`` gets its parameters and random numbers from streams keyed by (trial seed, arm) and
``i`` only, so the results are identical for any chunk size, worker count or backend.
Finished chunks are written atomically as Parquet, so an interrupted trial resumes where it
stopped (``resume=True``); a patient whose simulation fails is recorded with its status.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ciksim._version import __version__
from ciksim.analysis.killing import Product
from ciksim.analysis.patient import REPORTED, run_patients
from ciksim.analysis.product import ProductLots, resolve_lots
from ciksim.engines.threads import single_thread
from ciksim.errors import DataError
from ciksim.io import check_out_folder
from ciksim.model.variability import sample_parameters
from ciksim.models.patient import Scenario, patient_model, subtypes
from ciksim.schemas.options import execution_options
from ciksim.trial.delivery import NO_PRODUCT
from ciksim.trial.spec import TrialSpec

COLUMNS = ("arm", "patient", "subtype", "duration", "event", "cured", "relapse_day",
           "death_day", "extinction_day", "normal_nadir_fraction", "npm1_ratio_day0",
           "flow_mrd_day0", *REPORTED, "delivery",
           "not_infused_reason", "dose_fraction", "product_lot", "infusions_given",
           "os_duration", "os_event", "status")


#: Below this many patients (left to simulate) a trial with the default workers runs in this
#: process: importing ciksim in each worker costs more CPU time than simulating them.
IN_PROCESS_BELOW = 1000


def product_lots(spec: TrialSpec) -> ProductLots:
    """The trial's product lots: a culture protocol's harvests (with its donor option and
    seeded cells), a culture run folder, or the user's release data (C12)."""
    base = Path(spec.base_dir) if spec.base_dir else None
    return resolve_lots(dict(spec.raw.get("product", {})), seed=spec.seed, base=base)


def product_composition(spec: TrialSpec) -> dict[str, float]:
    """Composition of the trial product's median lot (the medoid)."""
    return product_lots(spec).as_product().median_composition()


def fixed_composition(composition: dict[str, float]) -> ProductLots:
    """One composition for every patient, lot size not limiting (an explicit override)."""
    return ProductLots("fixed composition", "given composition", composition["f_cik"],
                       composition["f_t"], composition["f_nk"], None)


def _weights(scen: Scenario, seed: int, idx: np.ndarray) -> np.ndarray:
    """Each patient's body weight, drawn exactly as ``run_patients`` draws it."""
    model = patient_model()
    draw = sample_parameters(model, idx.size, seed, medians=scen.parameters,
                             variability=scen.variability, indices=idx)
    w = draw.get("weight", scen.parameters.get("weight",
                                               model.parameter_by_name["weight"].value))
    return np.broadcast_to(np.asarray(w, dtype=float), idx.shape)


def _subtype_medians(spec: TrialSpec, seed: int, idx: np.ndarray
                     ) -> tuple[list[str], np.ndarray | None]:
    if not spec.subtype_mix:
        return [""] * idx.size, None
    names = sorted(spec.subtype_mix)
    cum = np.cumsum([spec.subtype_mix[k] for k in names])
    key = [seed, zlib.crc32(b"subtype")]
    u = np.array([np.random.default_rng(np.random.SeedSequence(key, spawn_key=(int(i),)))
                  .random() for i in idx])
    choice = np.minimum(np.searchsorted(cum, u * cum[-1], side="right"), len(names) - 1)
    table = subtypes()
    return [names[c] for c in choice], np.array([table[names[c]]["T_double"] for c in choice],
                                                 dtype=float)


def simulate_chunk(spec: TrialSpec, arm: int, start: int, stop: int,
                   lots: ProductLots | dict[str, float],
                   parameters: dict[str, np.ndarray] | None = None, *,
                   indices: np.ndarray | None = None, seed: int | None = None,
                   engine: str = "compiled") -> pd.DataFrame:
    """Patients ``start``..``stop - 1`` of ``arm``: one row each (see ``COLUMNS``).

    ``indices`` (instead of ``start``/``stop``) and ``seed`` (instead of the arm's seed) key
    the patients' random streams otherwise (trials over posterior draws use them).

    In a CIK arm each patient's product delivery is drawn (``spec.delivery``): patients
    whose product was not made or not infused are simulated without CIK and patients below
    the target dose with the reduced dose, all staying in their arm (intention to treat).
    Each patient receives a lot of the product (drawn by patient index; a composition dict
    is one lot of unlimited size): the infused mix is the lot's, and the infusions are as
    many of those scheduled as the lot's viable CD3+ cells supply at the patient's weight
    and delivered dose (none: simulated without CIK, still in the arm). ``parameters``
    overrides patient-model parameters (one value per patient of the chunk).
    ``engine``: the stochastic engine (``compiled`` or ``reference``; same outcomes).
    """
    if not isinstance(lots, ProductLots):
        lots = fixed_composition(lots)
    idx = np.arange(start, stop) if indices is None else np.asarray(indices, dtype=np.int64)
    seed = spec.arm_seed(arm) if seed is None else int(seed)
    labels, t_double = _subtype_medians(spec, seed, idx)
    scen = spec.scenario
    if t_double is not None:
        scen = Scenario(scen.name, scen.description, scen.protocol,
                        {**scen.parameters, "T_double": t_double},
                        {**scen.variability, "T_double": 0.2}, scen.relapse_threshold)
    cik = spec.arms[arm].cik
    if cik is None:
        plan = pd.DataFrame({"delivery": [NO_PRODUCT] * idx.size,
                             "not_infused_reason": [""] * idx.size,
                             "dose_fraction": np.zeros(idx.size)})
        lot = np.full(idx.size, -1, dtype=np.int64)
        given = np.zeros(idx.size, dtype=np.int64)
    else:
        plan = spec.delivery.draw(seed, idx)
        lot = lots.assign(seed, idx)
        dose = cik.dose_per_kg * np.maximum(plan["dose_fraction"].to_numpy(float), 1e-12)
        given = np.where(plan["dose_fraction"].to_numpy() > 0, lots.infusions_supplied(
            lot, dose, _weights(scen, seed, idx), cik.infusions), 0)
    fraction = plan["dose_fraction"].to_numpy()
    extra = {k: np.asarray(v, float) for k, v in (parameters or {}).items()}

    def run(pos: np.ndarray, sc: Scenario) -> pd.DataFrame:
        frames = []
        for f, k in sorted(set(zip(fraction[pos].tolist(), given[pos].tolist(),
                                   strict=True))):
            sel = pos[(fraction[pos] == f) & (given[pos] == k)]
            sched = (None if cik is None or f == 0 or k == 0 else
                     dataclasses.replace(cik, dose_per_kg=cik.dose_per_kg * float(f),
                                         infusions=int(k)))
            pars = {name: v[sel] for name, v in extra.items()}
            product = None
            if sched is not None:
                product = Product(lots.name, lots.f_cik[lot[sel]], lots.f_t[lot[sel]],
                                  lots.f_nk[lot[sel]])
                pars = {"prod_cik": product.f_cik, "prod_t": product.f_t,
                        "prod_nk": product.f_nk, **pars}
            r = run_patients(_subset(sc, t_double, sel), cik=sched, product=product,
                             replicates=sel.size, years=spec.follow_up_years, seed=seed,
                             relapse=spec.relapse, indices=idx[sel], parameters=pars,
                             engine=engine)
            frames.append(r.outcomes())
        return pd.concat(frames, ignore_index=True).sort_values("patient",
                                                                ignore_index=True)

    try:
        out = run(np.arange(idx.size), scen)
        out["status"] = "ok"
    except Exception:  # one bad patient must not stop the trial: retry one by one
        rows = []
        for k, i in enumerate(idx):
            single = _subset(scen, t_double, np.array([k]))
            try:
                row = run(np.array([k]), scen)
                row["status"] = "ok"
            except Exception as exc:
                model = patient_model()
                draw = sample_parameters(model, 1, seed, medians=single.parameters,
                                         variability=single.variability, indices=[i])
                values = {p: float(draw.get(p, [model.parameter_by_name[p].value])[0])
                          for p in REPORTED}
                row = pd.DataFrame([{"patient": i, "event": "censored", "duration": np.nan,
                                     "relapse_day": np.nan, "death_day": np.nan,
                                     "cured": False, "extinction_day": np.nan,
                                     "normal_nadir_fraction": np.nan,
                                     "npm1_ratio_day0": np.nan, "flow_mrd_day0": np.nan,
                                     **values,
                                     "status": f"failed: {type(exc).__name__}: {exc}"}])
            rows.append(row)
        out = pd.concat(rows, ignore_index=True)
    out.insert(0, "arm", spec.arms[arm].name)
    out.insert(2, "subtype", labels)
    for col in plan:
        out[col] = plan[col].to_numpy()
    out["product_lot"], out["infusions_given"] = lot, given
    ok = out["status"] == "ok"
    os_t, os_e = spec.after_relapse.overall_survival(
        seed, idx[ok.to_numpy()], out.loc[ok, "duration"].to_numpy(float),
        out.loc[ok, "event"].to_numpy(), 12.0 * spec.follow_up_years)
    out["os_duration"], out["os_event"] = np.nan, 0
    out.loc[ok, "os_duration"], out.loc[ok, "os_event"] = os_t, os_e
    return out[list(COLUMNS)]


def _subset(scen: Scenario, t_double: np.ndarray | None, pos: np.ndarray) -> Scenario:
    """The scenario for the patients at positions ``pos`` of the chunk."""
    if t_double is None:
        return scen
    value = t_double[pos] if pos.size > 1 else float(t_double[pos[0]])
    return Scenario(scen.name, scen.description, scen.protocol,
                    {**scen.parameters, "T_double": value}, scen.variability,
                    scen.relapse_threshold)


def _chunk_task(raw: dict[str, Any], arm: int, start: int, stop: int,
                lots: ProductLots | None, engine: str = "compiled") -> pd.DataFrame:
    """Top-level (picklable) entry point for worker processes and Dask; an allo spec's
    patients are simulated by :func:`ciksim.trial.allosim.simulate_allo_chunk`."""
    spec = TrialSpec.from_dict(raw)
    if getattr(spec, "setting", None) == "allo":
        from ciksim.trial.allosim import simulate_allo_chunk

        return simulate_allo_chunk(spec, arm, start, stop)
    return simulate_chunk(spec, arm, start, stop, lots, engine=engine)


@dataclass(frozen=True)
class Chunk:
    arm: int
    start: int
    stop: int

    @property
    def filename(self) -> str:
        return f"arm{self.arm:02d}-{self.start:09d}-{self.stop:09d}.parquet"


def auto_chunk_size(patients: int, workers: int) -> int:
    """Patients per chunk when neither the call nor the spec gives one: about four chunks
    per worker (balanced work, visible progress), between 200 (per-chunk overhead) and
    5,000 (memory, and the work lost to an interruption)."""
    return int(min(5000, max(200, math.ceil(patients / (4 * max(workers, 1))))))


def chunk_size_for(spec: TrialSpec, chunk_size: int | None, workers: int) -> int:
    """``chunk_size`` if given, else the spec's, else ``auto_chunk_size``."""
    if chunk_size is None and "chunk_size" in spec.raw:
        chunk_size = spec.chunk_size
    return int(chunk_size or auto_chunk_size(spec.patients_per_arm * len(spec.arms), workers))


def chunks(spec: TrialSpec, chunk_size: int | None = None, workers: int = 1) -> list[Chunk]:
    """The chunks of every arm (sizes from ``chunk_size_for``)."""
    size = chunk_size_for(spec, chunk_size, workers)
    if size < 1:
        raise DataError("chunk size must be >= 1")
    return [Chunk(a, s, min(s + size, spec.patients_per_arm))
            for a in range(len(spec.arms)) for s in range(0, spec.patients_per_arm, size)]


@dataclass
class TrialRun:
    """Patients (one row each, sorted by arm order then patient) and the run manifest."""

    spec: TrialSpec
    patients: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)


def _write_atomic(df: pd.DataFrame, path: Path) -> None:
    from ciksim.exchange.tables import write_parquet

    write_parquet(df, path)  # atomic, with each column's unit and description


def _json_atomic(data: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_trial(
    spec: TrialSpec,
    *,
    out: str | Path | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    resume: bool = False,
    chunk_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    composition: dict[str, float] | None = None,
    max_chunks: int | None = None,
    product: ProductLots | None = None,
    engine: str = "compiled",
) -> TrialRun:
    """Simulate every arm of ``spec``; see the module docstring for the guarantees.

    The product is the spec's (``product_lots``) unless ``product`` (lots) or
    ``composition`` (one mix for every patient, size not limiting) is given.

    ``workers``: local processes (None = all cores, except that fewer than
    ``IN_PROCESS_BELOW`` patients left to simulate run in this process; 1 = this process);
    ``scheduler``: the address of a running Dask scheduler (``tcp://host:port``) instead.
    ``progress(done, total)`` is called with patients done. ``chunk_size``: patients per
    chunk (default: the spec's, else ``auto_chunk_size``; a resumed run keeps its own).
    ``max_chunks`` stops after that many new chunks (used to test interruption).
    ``engine``: the stochastic engine, ``compiled`` or ``reference`` (same outcomes; see
    ``simulate_stochastic``).

    Every input (options, product, output folder) is checked before anything is written;
    the only files that may outlive an interruption are the finished chunks and a manifest
    saying they are resumable state.
    """
    t0 = time.perf_counter()
    opts = execution_options(workers, scheduler, chunk_size)
    workers, scheduler, chunk_size = opts.workers, opts.scheduler, opts.chunk_size
    n_workers = 4 if scheduler else (workers or os.cpu_count() or 1)  # a cluster: plan for 4
    folder = Path(out) if out is not None else None
    if resume and chunk_size is None and folder is not None \
            and (folder / "manifest.json").is_file():  # resume with the chunks already written
        try:
            old = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        kept = old.get("chunk_size") if isinstance(old, dict) else None
        if isinstance(kept, int) and not isinstance(kept, bool) and kept >= 1:
            chunk_size = kept
    chunk_size = chunk_size_for(spec, chunk_size, n_workers)
    todo = chunks(spec, chunk_size)
    allo = getattr(spec, "setting", None) == "allo"
    lots = (None if allo else product if product is not None else
            fixed_composition(composition) if composition is not None else product_lots(spec))
    done_frames: dict[Chunk, pd.DataFrame] = {}
    if folder is not None:
        cdir = folder / "chunks"
        manifest_path = folder / "manifest.json"
        _check_out(folder, cdir, manifest_path, spec, resume)
        cdir.mkdir(parents=True, exist_ok=True)
        _json_atomic({"status": "running", "digest": spec.digest(), "spec": spec.raw,
                      "chunk_size": chunk_size, "ciksim_version": __version__,
                      "resumable": RESUMABLE},
                     manifest_path)
        for c in todo:
            f = cdir / c.filename
            if resume and f.exists():
                done_frames[c] = pd.read_parquet(f)
    pending = [c for c in todo if c not in done_frames]
    if max_chunks is not None:
        pending = pending[:max_chunks]
    total = sum(c.stop - c.start for c in todo)
    n_done = sum(c.stop - c.start for c in done_frames)
    if progress:
        progress(n_done, total)
    if workers is None and not scheduler and total - n_done < IN_PROCESS_BELOW:
        workers = 1  # starting worker processes would cost more than these few patients
    timings: list[float] = []
    backend = "dask" if scheduler else ("process" if (workers or os.cpu_count() or 1) > 1
                                         else "in-process")
    for c, df, seconds in _execute(spec, pending, lots, workers, scheduler, engine):
        done_frames[c] = df
        timings.append(seconds)
        if folder is not None:
            _write_atomic(df, folder / "chunks" / c.filename)
        n_done += c.stop - c.start
        if progress:
            progress(n_done, total)
    complete = all(c in done_frames for c in todo)
    frames = [done_frames[c] for c in todo if c in done_frames]
    if frames:
        patients = pd.concat(frames, ignore_index=True)
    else:
        from ciksim.trial.allosim import ALLO_COLUMNS

        patients = pd.DataFrame(columns=list(ALLO_COLUMNS if allo else COLUMNS))
    manifest = {
        "status": "complete" if complete else "incomplete",
        "digest": spec.digest(), "spec": spec.raw, "seed": spec.seed,
        "ciksim_version": __version__, "backend": backend, "engine": engine,
        "workers": workers if not scheduler else None, "scheduler": scheduler,
        "chunk_size": chunk_size, "chunks": len(todo),
        "product_composition": None if lots is None else lots.summary()["composition"],
        "product": None if lots is None else lots.summary(),
        "patients": len(patients),
        "failed_patients": int((patients["status"] != "ok").sum()) if len(patients) else 0,
        "wall_seconds": time.perf_counter() - t0, "chunk_seconds": timings,
    }
    if folder is not None:
        if complete:
            _write_atomic(patients, folder / "patients.parquet")
        _json_atomic(manifest, folder / "manifest.json")
    return TrialRun(spec, patients, manifest)


#: What the manifest of an unfinished trial says about the files left behind.
RESUMABLE = ("chunks/ holds the finished chunks of this trial (resumable state, the only "
             "files an interruption leaves); run the same spec again with --resume and the "
             "same --out to continue")


def _check_out(folder: Path, cdir: Path, manifest_path: Path, spec: TrialSpec,
               resume: bool) -> None:
    """The output folder can take this trial (checked before anything is written)."""
    check_out_folder(folder)
    if cdir.exists() and not cdir.is_dir():
        raise DataError(f"--out {str(folder)!r}: chunks is a file; choose another --out")
    if cdir.exists() and any(cdir.iterdir()):
        if not resume:
            raise DataError(f"{folder} already holds trial chunks; pass --resume to "
                            "continue that trial, or choose another --out")
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8")) \
                if manifest_path.is_file() else {}
        except (OSError, ValueError):
            old = {}
        if not isinstance(old, dict) or old.get("digest") != spec.digest():
            raise DataError(f"{folder} holds a different trial (spec changed); choose "
                            "another --out")


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit when the process that started the pool is gone (a killed
    trial must not leave orphan workers behind)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="ciksim-parent-watch", daemon=True).start()


def _execute(spec: TrialSpec, pending: list[Chunk], comp: ProductLots | None,
             workers: int | None, scheduler: str | None, engine: str
             ) -> Iterator[tuple[Chunk, pd.DataFrame, float]]:
    raw = dict(spec.raw)
    jobs = [(c, (raw, c.arm, c.start, c.stop, comp, engine)) for c in pending]
    yield from execute(_chunk_task, jobs, workers, scheduler)


def execute(task: Callable[..., pd.DataFrame], jobs: list[tuple[Any, tuple[Any, ...]]],
            workers: int | None, scheduler: str | None
            ) -> Iterator[tuple[Any, pd.DataFrame, float]]:
    """Run ``task(*args)`` for each ``(key, args)`` of ``jobs`` in this process, in local
    worker processes or on a Dask scheduler; yields ``(key, result, seconds)`` as they
    finish. ``task`` must be a top-level (picklable) function."""
    if scheduler:
        from distributed import Client
        from distributed import as_completed as dask_completed

        with Client(scheduler) as client:
            futures = {client.submit(_timed_task, task, args, True, pure=False): key
                       for key, args in jobs}
            for fut in dask_completed(futures):
                df, seconds = fut.result()
                yield futures[fut], df, seconds
        return
    n_workers = workers or os.cpu_count() or 1
    if n_workers == 1 or len(jobs) <= 1:
        for key, args in jobs:
            df, seconds = _timed_task(task, args)
            yield key, df, seconds
        return
    with ProcessPoolExecutor(max_workers=n_workers, initializer=_watch_parent,
                             initargs=(os.getpid(),)) as pool:
        futs = {pool.submit(_timed_task, task, args, True): key for key, args in jobs}
        for fut in as_completed(futs):
            df, seconds = fut.result()
            yield futs[fut], df, seconds


def _timed_task(task: Callable[..., pd.DataFrame], args: tuple[Any, ...],
                in_worker: bool = False) -> tuple[pd.DataFrame, float]:
    """One job, timed; ``in_worker``: in a worker process (one thread: the workers are
    the parallelism)."""
    if in_worker:
        single_thread()
    t = time.perf_counter()
    df = task(*args)
    return df, time.perf_counter() - t
