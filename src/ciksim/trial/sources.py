"""Where a trial's parameter draws come from: the calibrated posterior or the prior.

A trial over draws accepts any object with ``sample(n, seed)`` returning a table of draws
(one row per draw, one column per parameter, natural scale). :func:`resolve_source` gives
the shipped posterior (``ciksim.evidence.Posterior.load()``), a saved one, or
:class:`PriorSampler` (the calibration's priors of the effect parameters), wrapped in a
:class:`DrawSource` that says which, for the report. A posterior calibrated by another
ciksim version or on another evidence set warns, naming both versions.

Columns map onto the patient model (:func:`patient_parameters`): the calibrated effect
parameters (``potency``, ``persistence_sd``, ``t_half_E``) through
``ciksim.evidence.effect.model_parameters``; a column named like a patient-model parameter
sets it for every patient of the draw; study terms (``bias:``, ``offset:``) describe the
calibration studies, not a new trial's population, and are not used.
"""

from __future__ import annotations

import hashlib
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ciksim.errors import CikWarning, DataError


class Sampler(Protocol):
    """Anything with ``sample(n, seed)`` returning draws (a DataFrame or records)."""

    def sample(self, n: int, seed: int) -> Any: ...


class PosteriorVersionWarning(CikWarning):
    """A posterior was calibrated by another ciksim version or on another evidence set."""


@dataclass(frozen=True)
class PriorSampler:
    """Effect parameters drawn from their calibration priors (uniform or log-uniform over
    the declared ranges; ``ciksim.evidence.effect``)."""

    dimensions: tuple[Any, ...]

    @classmethod
    def default(cls, effects: Sequence[str] | None = None) -> PriorSampler:
        from ciksim.evidence import load_evidence
        from ciksim.evidence.effect import DEFAULT_EFFECTS, dimensions

        dims = dimensions(load_evidence(), tuple(effects or DEFAULT_EFFECTS))
        return cls(tuple(d for d in dims if d.kind == "effect"))

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        """``n`` independent prior draws, reproducible by ``seed``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DataError(f"draws: need a whole number >= 1, got {n!r}")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"prior")]))
        cols = {}
        for d in self.dimensions:
            u = d.rv().ppf(rng.random(int(n)))
            cols[d.name] = np.asarray(d.to_natural(u), float)
        return pd.DataFrame(cols)


@dataclass(frozen=True)
class DrawSource:
    """A sampler and what it is: ``kind`` posterior, prior or sampler; ``label`` for
    reports; ``provenance`` (versions, file hash) for the manifest."""

    sampler: Any
    kind: str
    label: str
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def draws(self, n: int, seed: int) -> pd.DataFrame:
        """``n`` draws as a DataFrame (one row each)."""
        out = self.sampler.sample(int(n), int(seed))
        df = out if isinstance(out, pd.DataFrame) else pd.DataFrame(list(out))
        if len(df) != n:
            raise DataError(f"draw source {self.label}: sample({n}) gave {len(df)} draws")
        return df.reset_index(drop=True)


def file_hash(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256 (provenance of a saved posterior)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def check_versions(manifest: Mapping[str, Any], where: str) -> list[str]:
    """Warn (``PosteriorVersionWarning``) when a posterior comes from another ciksim version
    or evidence set than this installation's; returns the messages."""
    from ciksim._version import __version__

    notes = []
    theirs = manifest.get("package_version")
    if theirs and theirs != __version__:
        notes.append(f"{where} was calibrated with ciksim {theirs}; this is ciksim "
                     f"{__version__} (the model may differ): recalibrate with "
                     "`ciksim calibrate` or accept the difference")
    ev = manifest.get("evidence_version")
    if ev:
        from ciksim.evidence import load_evidence

        ours = load_evidence().version
        if ev != ours:
            notes.append(f"{where} was calibrated on evidence set {ev}; the shipped evidence "
                         f"is {ours}: recalibrate, or pass the posterior of the evidence you "
                         "mean")
    for n in notes:
        warnings.warn(n, PosteriorVersionWarning, stacklevel=3)
    return notes


def resolve_source(posterior: str | Path | Sampler | None = None, prior: bool = False
                   ) -> DrawSource:
    """The draws a trial runs over: ``prior`` → the effect priors; ``posterior`` a path →
    that saved posterior; an object with ``sample`` → itself; None → the shipped posterior.
    """
    from ciksim.evidence.posterior import Posterior

    if prior:
        if posterior is not None:
            raise DataError("give either --posterior or --prior, not both")
        post = None
        try:
            post = Posterior.load()
        except DataError:
            post = None
        if post is not None and post.dimensions:
            dims = tuple(d for d in post.dimensions if d.kind == "effect")
            return DrawSource(PriorSampler(dims), "prior",
                              "prior of the shipped posterior's effect parameters",
                              {"effects": [d.name for d in dims]})
        s = PriorSampler.default()
        return DrawSource(s, "prior", "prior of the effect parameters (ciksim.evidence)",
                          {"effects": [d.name for d in s.dimensions]})
    if posterior is not None and hasattr(posterior, "sample"):
        manifest = dict(getattr(posterior, "manifest", {}) or {})
        notes = check_versions(manifest, "the posterior") if manifest else []
        kind = "posterior" if isinstance(posterior, Posterior) else "sampler"
        return DrawSource(posterior, kind, f"{kind} given in the call",
                          {**provenance_of(manifest), "warnings": notes})
    if posterior is None:
        try:
            post = Posterior.load()
        except DataError as exc:
            raise DataError(f"{exc}; or run the trial over the prior (--prior) or a saved "
                            "posterior (--posterior DIR)") from None
        notes = check_versions(post.manifest, "the shipped posterior")
        return DrawSource(post, "posterior", "shipped calibrated posterior",
                          {**provenance_of(post.manifest), "warnings": notes})
    path = Path(posterior)
    post = Posterior.load(path)
    file = path / "posterior.parquet" if path.is_dir() else path
    notes = check_versions(post.manifest, f"posterior {str(path)!r}")
    return DrawSource(post, "posterior", f"posterior {path.name}",
                      {**provenance_of(post.manifest), "file_sha256": file_hash(file),
                       "warnings": notes})


def provenance_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a posterior's manifest that say where it comes from."""
    keys = ("package_version", "evidence_version", "evidence_hash", "seed", "particles",
            "generations")
    return {k: manifest[k] for k in keys if k in manifest}


def persistence_deviates(seed: int, indices: np.ndarray) -> np.ndarray:
    """Each patient's uniform deviate of effector persistence (mapped to a bounded normal
    as in the calibration, ``ciksim.evidence.effect.model_parameters``), from the stream
    keyed by (seed, patient index)."""
    from ciksim.evidence.effect import persistence_uniforms

    key = [int(seed), zlib.crc32(b"persistence")]
    return np.array([persistence_uniforms(np.random.default_rng(
        np.random.SeedSequence(key, spawn_key=(int(i),))), 1)[0] for i in indices])


def patient_parameters(draws: pd.DataFrame, draw_of_patient: np.ndarray, u: np.ndarray
                       ) -> dict[str, np.ndarray]:
    """Patient-model parameters for patients of the given draws (see module docstring)."""
    from ciksim.evidence.effect import effect_parameters, model_parameters
    from ciksim.models.patient import patient_model

    effects = set(effect_parameters())
    model_names = set(patient_model().parameter_names)
    cols = list(draws.columns)
    unknown = [c for c in cols if c not in effects and c not in model_names
               and not c.startswith(("bias:", "offset:"))]
    if unknown:
        raise DataError(f"draws: column(s) {', '.join(unknown)} are neither effect parameters "
                        f"({', '.join(sorted(effects))}) nor patient-model parameters")
    out: dict[str, np.ndarray] = {}
    eff = [c for c in cols if c in effects]
    for d in np.unique(draw_of_patient):
        sel = draw_of_patient == d
        row = draws.iloc[int(d)]
        pars: dict[str, np.ndarray] = {}
        if eff:
            pars.update(model_parameters({c: float(row[c]) for c in eff}, u[sel]))
        for c in cols:
            if c in model_names and c not in eff:
                pars[c] = np.full(int(sel.sum()), float(row[c]))
        for k, v in pars.items():
            out.setdefault(k, np.full(draw_of_patient.size, np.nan))[sel] = v
    return out
