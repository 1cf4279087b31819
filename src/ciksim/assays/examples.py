"""Example assay datasets shipped with ciksim: SYNTHETIC, generated from the model with noise.

They are not measurements. Each is made by :func:`synthetic_release_assay` with a fixed
seed; ``python -m ciksim.assays.examples`` rewrites them (a test checks they are current).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ciksim.analysis.killing import run_assay
from ciksim.errors import DataError

#: name -> (effectors, targets, E:T ratios, replicates, seed)
EXAMPLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[float, ...], int, int]] = {
    "cik-vs-targets": (("cik",), ("k562", "aml-blast", "normal-pbmc"),
                       (40, 20, 10, 5, 2.5), 3, 101),
    "cik-vs-lak": (("cik", "lak"), ("aml-blast",), (40, 20, 10, 5, 2.5, 1.25), 3, 202),
}


def synthetic_release_assay(
    effectors: Sequence[str], targets: Sequence[str], et: Sequence[float], *,
    replicates: int = 3, seed: int = 0, max_cpm: float = 3000.0, leak: float = 0.06,
    cv: float = 0.05,
) -> pd.DataFrame:
    """A 4-h 51Cr-release plate simulated from the killing model.

    One donor's product per effector (the culture model's draw for ``seed``); maximum
    release ``max_cpm`` counts; spontaneous release = ``leak`` of maximum plus the model's
    spontaneous target death; experimental wells add the model's specific lysis. Counts get
    multiplicative noise (CV ``cv``) and are rounded.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for tgt in targets:
        from ciksim.models.killing import target_parameters

        spont_frac = leak + (1 - leak) * (1 - np.exp(-4.0 * target_parameters(tgt)["k_spont"]))
        for rep in range(1, replicates + 1):
            rows.append(("", tgt, "", "spontaneous", rep, max_cpm * spont_frac))
            rows.append(("", tgt, "", "maximum", rep, max_cpm))
        for eff in effectors:
            assay = run_assay(eff, tgt, et=et, donors=1, seed=seed)
            lysis = assay.lysis_pct[:, 0] / 100
            for e, frac in zip(et, lysis, strict=True):
                for rep in range(1, replicates + 1):
                    value = max_cpm * (spont_frac + (1 - spont_frac) * frac)
                    rows.append((eff, tgt, e, "experimental", rep, value))
    df = pd.DataFrame(rows, columns=["effector", "target", "et_ratio", "kind", "replicate",
                                     "value"])
    noise = rng.normal(1.0, cv, len(df))
    df["value"] = np.round(df["value"].astype(float) * noise).astype(int)
    return df


def render(name: str) -> str:
    """CSV text of a shipped example, generated afresh."""
    if name not in EXAMPLES:
        raise DataError(f"unknown example {name!r}; available: {', '.join(EXAMPLES)}")
    eff, tgt, et, reps, seed = EXAMPLES[name]
    buf = io.StringIO()
    synthetic_release_assay(eff, tgt, et, replicates=reps, seed=seed).to_csv(buf, index=False)
    return buf.getvalue()


def example_path(name: str) -> Path:
    """Path of a shipped example dataset (``cik-vs-targets`` or ``cik-vs-lak``)."""
    if name not in EXAMPLES:
        raise DataError(f"unknown example {name!r}; available: {', '.join(EXAMPLES)}")
    return Path(str(resources.files("ciksim.data") / "examples" / f"lysis-{name}.csv"))


def main(argv: list[str] | None = None) -> None:
    folder = Path((argv or sys.argv[1:] or ["src/ciksim/data/examples"])[0])
    for name in EXAMPLES:
        path = folder / f"lysis-{name}.csv"
        path.write_text(render(name), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
