"""MRD as an observable: the NPM1mut/ABL1 ratio and flow MRD of a marrow sample.

Mapping from the model's leukemic cells (documented in ``docs/models/patient.md``):

1. the sample's leukemic share is ``s = L_tot / (L_tot + N)`` (leukemic over nucleated marrow
   cells, the model's ``leukemic_share``);
2. qPCR analyses ``mrd_cells`` cell equivalents, so the leukemic cells in it are
   ``k ~ Poisson(mrd_cells · s)`` (sampling noise; ``k = 0`` is a negative result, which is
   what sets the assay's sensitivity);
3. each leukemic cell carries ``kappa_npm1`` NPM1mut transcripts per ABL1 transcript of a
   nucleated cell, and the assay adds log-normal noise:
   ``ratio = kappa_npm1 · k / mrd_cells · 10^(mrd_log10_sd · z)``, ``z ~ N(0, 1)``;
4. flow MRD counts leukemic cells among ``flow_events`` CD45+ events:
   ``flow = Poisson(flow_events · s) / flow_events``.

Both are ≥ 0 by construction; inputs that could break that are refused with a ``DataError``.
Random numbers come from one stream per patient, ``SeedSequence([seed, crc32("mrd")],
spawn_key=(patient,))``, so a patient's measurement does not depend on its batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ciksim.errors import DataError

MRD_FIELDS = ("kappa_npm1", "mrd_cells", "mrd_log10_sd", "flow_events")


@dataclass(frozen=True)
class MrdMeasurement:
    """Per patient: NPM1mut/ABL1 ratio (0 = not detected) and flow MRD (leukemic share)."""

    npm1_ratio: np.ndarray
    flow_mrd: np.ndarray


def _check(name: str, values: np.ndarray, low: float, fix: str) -> None:
    if not np.all(np.isfinite(values)) or np.any(values < low):
        raise DataError(f"{name}: the MRD mapping needs finite values >= {low:g} (got "
                        f"{float(np.min(values)):g}); {fix}")


def measure_mrd(leukemic_share: np.ndarray, assay: Mapping[str, np.ndarray | float],
                seed: int, indices: Sequence[int] | np.ndarray) -> MrdMeasurement:
    """Simulated NPM1mut/ABL1 ratio and flow MRD for each patient (see the module docstring).

    ``assay`` gives ``kappa_npm1``, ``mrd_cells``, ``mrd_log10_sd`` and ``flow_events`` (a
    number or one per patient); ``indices`` number the patients for their random streams.
    """
    share = np.asarray(leukemic_share, dtype=float)
    idx = np.asarray(indices, dtype=np.int64)
    n = share.size
    if idx.shape != (n,):
        raise DataError(f"indices: need {n} patient indices, got shape {idx.shape}")
    if np.any(~np.isfinite(share)) or np.any((share < 0) | (share > 1)):
        raise DataError("leukemic_share: must lie in [0, 1] (leukemic over nucleated cells)")
    missing = [f for f in MRD_FIELDS if f not in assay]
    if missing:
        raise DataError(f"MRD assay: missing field(s) {', '.join(missing)}")
    kappa, cells, sd, events = (np.broadcast_to(np.asarray(assay[f], float), (n,))
                                for f in MRD_FIELDS)
    _check("kappa_npm1", kappa, 0.0, "give the NPM1mut/ABL1 ratio of a purely leukemic "
           "sample as a number >= 0 (a negative ratio has no meaning)")
    _check("mrd_cells", cells, 1.0, "give the cell equivalents analysed per qPCR (>= 1)")
    _check("mrd_log10_sd", sd, 0.0, "give the assay's log10 SD as a number >= 0")
    _check("flow_events", events, 1.0, "give the CD45+ events acquired per sample (>= 1)")
    ratio = np.empty(n)
    flow = np.empty(n)
    key = [int(seed), zlib.crc32(b"mrd")]
    for row, i in enumerate(idx):
        rng = np.random.default_rng(np.random.SeedSequence(key, spawn_key=(int(i),)))
        k = rng.poisson(cells[row] * share[row])
        z = rng.standard_normal()
        ratio[row] = kappa[row] * k / cells[row] * 10.0 ** (sd[row] * z)
        flow[row] = rng.poisson(events[row] * share[row]) / events[row]
    return MrdMeasurement(ratio, flow)
