"""Manufactured CIK products as lots: composition and size flow into patients and trials (C12).

A lot is one harvest (a culture donor) or one released product (a row of the user's release
data). Each lot has its effector mix (shares of viable cells: CD3+CD56+, CD3+CD56- T,
CD3-CD56+ NK) and its viable CD3+ cells, which bound how many infusions of a CD3+/kg dose it
can supply to a patient of a given weight. Lots come from a built-in culture protocol (with a
donor option), a ``ciksim culture --out`` folder, or release data (CSV).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import model_validator

from ciksim.analysis.culture import CultureRun, run_culture
from ciksim.analysis.killing import Product, product_from_culture, product_from_folder
from ciksim.errors import DataError
from ciksim.schemas.base import Schema
from ciksim.schemas.tables import number, read_table, text

#: Release-data columns: viable-cell shares (%) and viability (%) of each lot's cells.
RELEASE_COLUMNS = ("cells", "cd3cd56_pct", "cd3_cd56neg_pct", "nk_pct", "viability_pct")
RELEASE_UNITS = {"cells": "cells", "cd3cd56_pct": "% of viable cells",
                 "cd3_cd56neg_pct": "% of viable cells", "nk_pct": "% of viable cells",
                 "viability_pct": "%"}
_SHARES = ("cd3cd56_pct", "cd3_cd56neg_pct", "nk_pct")
#: Built-in example release data (``ciksim/data/examples/<name>.csv``): six illustrative lots
#: within published ranges (yield 0.42-2.47e9 cells and 40-71% CD3+CD56+, Introna 2006;
#: CD3+CD56+ median 11%, Laport 2011; viability >= 85%), not measurements.
RELEASE_EXAMPLES = ("release-cik-lots",)


def release_data_path(name_or_path: str | Path, base: Path | None = None) -> Path:
    """A release-data CSV: a file (relative to ``base`` if not found as given) or a
    built-in example name (``release-cik-lots``)."""
    from importlib import resources

    p = Path(name_or_path)
    if p.is_file():
        return p
    if base is not None and not p.is_absolute() and (base / p).is_file():
        return base / p
    if str(name_or_path) in RELEASE_EXAMPLES:
        return Path(str(resources.files("ciksim.data") / "examples" / f"{name_or_path}.csv"))
    raise DataError(f"release_data: {str(name_or_path)!r} is not a file; give a CSV with "
                    f"columns lot,{','.join(RELEASE_COLUMNS)} or the built-in example "
                    f"{', '.join(RELEASE_EXAMPLES)}")


@dataclass(frozen=True)
class ProductLots:
    """Lots a trial's patients receive: per lot, effector shares and viable CD3+ cells.

    ``cd3_cells`` None means the size is not limiting (every scheduled infusion is given).
    """

    name: str
    source: str
    f_cik: np.ndarray
    f_t: np.ndarray
    f_nk: np.ndarray
    cd3_cells: np.ndarray | None = None

    def __post_init__(self) -> None:
        product = self.as_product()  # validates the shares
        for key in ("f_cik", "f_t", "f_nk"):
            object.__setattr__(self, key, getattr(product, key))
        n = product.donors
        if self.cd3_cells is not None:
            cells = np.broadcast_to(np.asarray(self.cd3_cells, dtype=float), (n,)).copy()
            if np.any(~np.isfinite(cells)) or np.any(cells < 0):
                raise DataError(f"product {self.name!r}: viable CD3+ cells must be >= 0")
            object.__setattr__(self, "cd3_cells", cells)
        if np.any(self.f_cik + self.f_t <= 0):
            raise DataError(f"product {self.name!r}: a lot has no CD3+ cells to dose by")

    @property
    def lots(self) -> int:
        return int(self.f_cik.size)

    def as_product(self) -> Product:
        """The lots as a killing-model product (one composition per lot)."""
        return Product(self.name, self.f_cik, self.f_t, self.f_nk)

    def assign(self, seed: int, indices: np.ndarray) -> np.ndarray:
        """The lot of each patient: a uniform draw keyed by (seed, patient index) only."""
        key = [int(seed), zlib.crc32(b"product lot")]
        return np.array([int(np.random.default_rng(np.random.SeedSequence(
            key, spawn_key=(int(i),))).integers(self.lots)) for i in indices], dtype=np.int64)

    def infusions_supplied(self, lot: np.ndarray, dose_per_kg: float | np.ndarray,
                           weight: np.ndarray,
                           scheduled: int) -> np.ndarray:
        """Infusions of ``dose_per_kg`` CD3+ cells/kg a lot supplies (at most ``scheduled``)."""
        if self.cd3_cells is None:
            return np.full(np.shape(lot), int(scheduled), dtype=np.int64)
        per_infusion = dose_per_kg * np.asarray(weight, dtype=float)
        n = np.floor(self.cd3_cells[lot] / per_infusion + 1e-9)
        return np.minimum(n, scheduled).astype(np.int64)

    def summary(self) -> dict[str, Any]:
        """Lots, the medoid composition and the median viable CD3+ cells (JSON-ready)."""
        out: dict[str, Any] = {"name": self.name, "source": self.source, "lots": self.lots,
                               "composition": self.as_product().median_composition()}
        out["median_cd3_cells"] = (float(np.median(self.cd3_cells))
                                   if self.cd3_cells is not None else None)
        return out


def lots_from_culture(run: CultureRun, day: float | None = None) -> ProductLots:
    """Each donor's harvest of a culture run (default: its last day) is one lot."""
    idx = -1 if day is None else int(np.argmin(np.abs(run.days - day)))
    prod = product_from_culture(run, None if day is None else float(run.days[idx]))
    cd3 = run.result["cd3_cells"][idx]
    return ProductLots(prod.name, f"culture {run.protocol.name}, donor {run.donor}, day "
                       f"{run.days[idx]:g}, {run.start_cells:.3g} cells seeded", prod.f_cik,
                       prod.f_t, prod.f_nk, cd3)


def lots_from_folder(path: str | Path) -> ProductLots:
    """Each donor's last day in a ``ciksim culture --out`` folder is one lot."""
    import pandas as pd

    prod = product_from_folder(path)
    folder = Path(path)
    f = next(x for x in (folder / "culture_donors.csv", folder / "culture_donors.parquet")
             if x.is_file())
    df = pd.read_csv(f) if f.suffix == ".csv" else pd.read_parquet(f)
    if "total_cells" not in df.columns:
        raise DataError(f"product: {f} lacks column total_cells (cells per donor); write "
                        "the folder with `ciksim culture --out`")
    last = df[df["day"] == df["day"].max()].sort_values("donor")
    cd3 = last["total_cells"].to_numpy(float) * last["cd3_pct"].to_numpy(float) / 100
    return ProductLots(prod.name, f"culture run folder {folder}", prod.f_cik, prod.f_t,
                       prod.f_nk, cd3)


_Pct = number(ge=0, le=100, what="a percentage of viable cells in [0, 100]")
_Lot = text(max_length=100)
_Cells = number(gt=0, what="cells in the lot, live and dead")
_Viability = number(gt=0, le=100, what="viability, a percentage in (0, 100]")


class ReleaseRow(Schema):
    """One manufactured lot (a row of the release-data CSV): cells in the lot (live and
    dead), phenotype shares (% of viable cells) and viability."""

    lot: _Lot = ""
    cells: _Cells
    cd3cd56_pct: _Pct
    cd3_cd56neg_pct: _Pct
    nk_pct: _Pct
    viability_pct: _Viability

    @model_validator(mode="after")
    def _shares(self) -> ReleaseRow:
        total = self.cd3cd56_pct + self.cd3_cd56neg_pct + self.nk_pct
        if total > 100 + 1e-9:
            raise ValueError(f"columns {' + '.join(_SHARES)}: shares add up to {total:g}% > "
                             "100%; they are shares of the same viable cells, so correct the "
                             "row so they add up to at most 100")
        if self.cd3cd56_pct + self.cd3_cd56neg_pct <= 0:
            raise ValueError("the lot has no CD3+ cells (cd3cd56_pct + cd3_cd56neg_pct = 0), "
                             "so it cannot be dosed by CD3+ cells/kg")
        return self


def read_release_data(path: str | Path) -> ProductLots:
    """Release data of manufactured lots (CSV, one row per lot; :class:`ReleaseRow`).

    Columns: ``cells`` (cells in the lot, live and dead), ``cd3cd56_pct``,
    ``cd3_cd56neg_pct``, ``nk_pct`` (% of viable cells; they add up to at most 100, the rest
    being other cells) and ``viability_pct``; an optional ``lot`` names the row. Errors name
    the line, the column and the fix.
    """
    shares: dict[str, list[float]] = {k: [] for k in _SHARES}
    cd3: list[float] = []
    for _, _, row in read_table(path, ReleaseRow, what="release data"):
        for c in _SHARES:
            shares[c].append(getattr(row, c) / 100)
        viable = row.cells * row.viability_pct / 100
        cd3.append(viable * (row.cd3cd56_pct + row.cd3_cd56neg_pct) / 100)
    p = Path(path)
    return ProductLots(p.stem, f"release data {p}", np.array(shares["cd3cd56_pct"]),
                       np.array(shares["cd3_cd56neg_pct"]), np.array(shares["nk_pct"]),
                       np.array(cd3))


#: Modules whose code decides a built product's lots: their source is part of the cache key.
_LOT_CODE = ("analysis/culture.py", "analysis/killing.py", "analysis/product.py",
             "engines/ode.py", "engines/compiled.py", "model/model.py", "model/variability.py",
             "models/culture.py", "protocol.py")


def built_product(protocol: str | Path = "cik-gmp", *, donors: int = 200, seed: int = 0,
                  donor: str | Path = "healthy", start_cells: float | None = None
                  ) -> ProductLots:
    """Lots of a built-in (or file) culture protocol: one per simulated donor, at harvest.

    The lots are kept in the results cache (``ciksim.engines.codecache.cached_arrays``)
    keyed by the protocol, the donor option, the culture model's declaration, the
    arguments, numpy's and scipy's versions and the source of the code that cultures, so a
    later process reads them (the same numbers, bit for bit) instead of culturing again.
    """
    import scipy

    from ciksim.engines.codecache import cached_arrays
    from ciksim.models.culture import Donor, culture_model
    from ciksim.protocol import Protocol

    proto = Protocol.load(protocol)
    material = Donor.load(donor)

    def compute() -> dict[str, np.ndarray]:
        run = run_culture(proto, donors=donors, seed=seed, donor=material,
                          start_cells=start_cells)
        lots = lots_from_culture(run)
        return {"f_cik": lots.f_cik, "f_t": lots.f_t, "f_nk": lots.f_nk,
                "cd3_cells": np.asarray(lots.cd3_cells), "name": np.array(lots.name),
                "source": np.array(lots.source)}

    package = Path(__file__).resolve().parents[1]
    parts = [repr(proto), repr(material), repr(culture_model()),
             repr((donors, seed, start_cells)), np.__version__, scipy.__version__,
             *((package / f).read_text(encoding="utf-8") for f in _LOT_CODE)]
    a = cached_arrays("lots", parts, compute)
    return ProductLots(str(a["name"]), str(a["source"]), a["f_cik"], a["f_t"], a["f_nk"],
                       a["cd3_cells"])


def resolve_lots(spec: Mapping[str, Any], *, seed: int, base: Path | None = None
                 ) -> ProductLots:
    """Lots from a trial spec's ``[product]`` table (already validated by the spec)."""
    def path(key: str) -> Path:
        p = Path(str(spec[key]))
        if not p.is_absolute() and not p.exists() and base is not None \
                and (base / p).exists():
            return base / p
        return p

    if spec.get("release_data"):
        return read_release_data(release_data_path(str(spec["release_data"]), base))
    if spec.get("run_folder"):
        return lots_from_folder(path("run_folder"))
    return built_product(str(spec.get("culture_protocol", "cik-gmp")),
                         donors=int(spec.get("donors", 200)), seed=seed,
                         donor=str(spec.get("donor", "healthy")),
                         start_cells=spec.get("start_cells"))
