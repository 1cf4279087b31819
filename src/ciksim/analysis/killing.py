"""Simulated cytotoxicity assays: % specific lysis per E:T, with the spread over donors."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ciksim.analysis.culture import CultureRun, run_culture, time_progress
from ciksim.engines import simulate
from ciksim.errors import DataError
from ciksim.model.variability import sample_parameters
from ciksim.models.killing import killing_model, target_library, target_parameters
from ciksim.schemas.options import check_count, check_horizon

#: Built-in effector products: a culture protocol harvested on day 21, or a pure subset.
PRODUCTS = {"cik": "cik-standard", "lak": "lak", "nk": None, "t": None}
BLOCKS = ("nkg2d", "hla")


@dataclass(frozen=True)
class Product:
    """An effector product: per-donor shares of CD3+CD56+, CD3+CD56- T and NK cells.

    Shares are of all cells in the product (the rest kill nothing); arrays have one entry
    per donor.
    """

    name: str
    f_cik: np.ndarray
    f_t: np.ndarray
    f_nk: np.ndarray

    def __post_init__(self) -> None:
        for key in ("f_cik", "f_t", "f_nk"):
            v = np.atleast_1d(np.asarray(getattr(self, key), dtype=float))
            if np.any(~np.isfinite(v)) or np.any(v < 0) or np.any(v > 1):
                raise DataError(f"product {self.name!r}: {key} must be shares in [0, 1]")
            object.__setattr__(self, key, v)
        if np.any(self.f_cik + self.f_t + self.f_nk > 1 + 1e-9):
            raise DataError(f"product {self.name!r}: shares add up to more than 1")

    @property
    def donors(self) -> int:
        return int(np.broadcast(self.f_cik, self.f_t, self.f_nk).shape[0])

    def median_composition(self) -> dict[str, float]:
        """The composition of the median donor: the medoid (the donor whose shares are
        closest, summed absolute differences, to every other donor's; lowest index on ties).

        Taking each share's median separately can give shares adding up to more than 1
        (no donor has them); the medoid is always a real, valid composition.
        """
        n = self.donors
        shares = np.column_stack([np.broadcast_to(getattr(self, k), (n,))
                                  for k in ("f_cik", "f_t", "f_nk")])
        spread = sum(_abs_deviation_sums(shares[:, c]) for c in range(3))
        medoid = shares[int(np.argmin(spread))]
        return {k: float(v) for k, v in zip(("f_cik", "f_t", "f_nk"), medoid, strict=True)}


def _abs_deviation_sums(x: np.ndarray) -> np.ndarray:
    """For each element, the sum of its absolute differences to all elements (O(n log n))."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    n = xs.size
    below = np.concatenate([[0.0], np.cumsum(xs)])
    r = np.arange(n)
    sums = xs * r - below[r] + (below[n] - below[r + 1]) - xs * (n - r - 1)
    out = np.empty(n)
    out[order] = sums
    return out


def product_from_culture(run: CultureRun, day: float | None = None) -> Product:
    """The harvest of a culture run (default: its last day), one composition per donor."""
    r = run.result
    idx = -1 if day is None else int(np.argmin(np.abs(run.days - day)))
    total = r["total_cells"][idx]
    t_neg = sum(r[s][idx] for s in ("T_rest", "T_g1a", "T_g1b", "T_act"))
    return Product(run.protocol.name, r["CIK"][idx] / total, t_neg / total, r["NK"][idx] / total)


def product_from_folder(path: str | Path) -> Product:
    """The harvest (last day) of each donor in a ``ciksim culture --out`` folder."""
    folder = Path(path)
    files = [folder / "culture_donors.csv", folder / "culture_donors.parquet"]
    found = [f for f in files if f.is_file()]
    if not found:
        raise DataError(f"effector: {str(folder)!r} holds no culture_donors.csv/.parquet; "
                        "give a folder written by `ciksim culture --out`")
    f = found[0]
    df = pd.read_csv(f) if f.suffix == ".csv" else pd.read_parquet(f)
    need = {"protocol", "donor", "day", "cd3cd56_pct", "cd3_pct", "nk_pct"}
    if not need <= set(df.columns):
        raise DataError(f"effector: {f} lacks column(s) {sorted(need - set(df.columns))}")
    protocols = list(dict.fromkeys(df["protocol"]))
    if len(protocols) != 1:
        raise DataError(f"effector: {f} holds several protocols ({', '.join(protocols)}); "
                        "write one protocol per folder")
    last = df[df["day"] == df["day"].max()].sort_values("donor")
    return Product(str(protocols[0]), last["cd3cd56_pct"].to_numpy() / 100,
                   (last["cd3_pct"] - last["cd3cd56_pct"]).to_numpy() / 100,
                   last["nk_pct"].to_numpy() / 100)


#: Culture days of a built-in product's run (its harvest).
PRODUCT_DAYS = 21.0


def builtin_product(name: str, donors: int = 200, seed: int = 0,
                    progress: Callable[[float], None] | None = None) -> Product:
    """``cik``/``lak``: day-21 harvest of the culture model; ``nk``/``t``: pure subsets.
    ``progress(day)``: the culture day reached (see :func:`run_culture`)."""
    if name not in PRODUCTS:
        raise DataError(f"effector: unknown product {name!r}; use {', '.join(PRODUCTS)} or a "
                        "culture output folder")
    protocol = PRODUCTS[name]
    if protocol is not None:
        return product_from_culture(run_culture(protocol, donors=donors, seed=seed,
                                                days=PRODUCT_DAYS, progress=progress))
    ones, zeros = np.ones(donors), np.zeros(donors)
    return Product(name, zeros, ones if name == "t" else zeros, ones if name == "nk" else zeros)


def cultured(effector: str | Path | Product) -> bool:
    """Whether :func:`resolve_product` simulates a culture for ``effector``."""
    return not isinstance(effector, Product) and PRODUCTS.get(str(effector)) is not None


def resolve_product(effector: str | Path | Product, donors: int, seed: int,
                    progress: Callable[[float], None] | None = None) -> Product:
    if isinstance(effector, Product):
        return effector
    if str(effector) in PRODUCTS:
        return builtin_product(str(effector), donors, seed, progress)
    path = Path(effector)
    if path.is_dir():
        return product_from_folder(path)
    raise DataError(f"effector: {str(effector)!r} is neither a product "
                    f"({', '.join(PRODUCTS)}) nor a culture output folder")


def resolve_target(target: str | Path | Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    if isinstance(target, Mapping):
        return str(target.get("name", "custom")), target_parameters(dict(target))
    if str(target) in target_library():
        return str(target), target_parameters(str(target))
    path = Path(target)
    if path.suffix == ".toml" or path.is_file():
        from ciksim.schemas import read_toml, validate
        from ciksim.schemas.target import target_schema

        data = read_toml(path, what="target file")
        validate(target_schema(), data, origin=str(path))
        return str(data.get("name") or path.stem), target_parameters(data)
    raise DataError(f"target: unknown target {str(target)!r}; built-in: "
                    f"{', '.join(target_library())}, or a TOML file")


@dataclass(frozen=True)
class AssayRun:
    """% specific lysis (n_et, n_donors) of a simulated assay, and its set-up."""

    effector: str
    target: str
    et: np.ndarray
    hours: float
    block: str | None
    lysis_pct: np.ndarray

    @property
    def donors(self) -> int:
        """Donors simulated (a product folder has its own number, whatever was asked)."""
        return int(self.lysis_pct.shape[1])

    def summary(self) -> pd.DataFrame:
        """One row per E:T: donor median, 5th and 95th percentile of % specific lysis."""
        q = np.quantile(self.lysis_pct, [0.5, 0.05, 0.95], axis=1)
        return pd.DataFrame({"et_ratio": self.et, "lysis_pct": q[0], "lysis_pct_p05": q[1],
                             "lysis_pct_p95": q[2]})


def run_assay(
    effector: str | Path | Product = "cik",
    target: str | Path | Mapping[str, Any] = "k562",
    *,
    et: Sequence[float] = (40, 20, 10, 5, 2.5),
    hours: float = 4.0,
    block: str | None = None,
    donors: int = 200,
    seed: int = 0,
    parameters: Mapping[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AssayRun:
    """Simulate a release (or flow) assay; % specific lysis = 100·(1 − live/live_control).

    Each donor has its own product composition (from the culture model) and per-cell kill
    rates (log-normal draws); the control well (no effectors) is simulated alongside.
    ``progress(done, total)`` counts simulated hours: the product's culture (a built-in
    ``cik``/``lak``, 24 per culture day) then the assay, as each batched solve advances (it
    watches the solver, so the numbers are the same with or without it).
    """
    et_arr = np.asarray(list(et), dtype=float)
    if et_arr.size == 0 or np.any(~np.isfinite(et_arr)) or np.any(et_arr <= 0):
        raise DataError("et: E:T ratios must be numbers > 0, e.g. 40,20,10,5,2.5")
    check_horizon("max_assay_hours", hours, field="hours")
    check_count("max_donors", donors, field="donors")
    if block is not None and block not in BLOCKS:
        raise DataError(f"block: use {' or '.join(BLOCKS)}, not {block!r}")
    # simulated time in hours: the product's culture (days), then the assay
    spans = [PRODUCT_DAYS, hours / 24] if cultured(effector) else [hours / 24]
    target_name, tparams = resolve_target(target)  # checked before the product's culture
    product = resolve_product(effector, donors, seed, time_progress(progress, spans, 0, 24.0))
    n_don = product.donors
    model = killing_model()
    draws = sample_parameters(model, n_don, seed) if n_don > 1 else {}
    n_et = et_arr.size + 1  # first column: control well without effectors
    rep = {k: np.repeat(v, n_et) for k, v in draws.items()}
    pars: dict[str, Any] = {**tparams, **rep}
    pars["et_ratio"] = np.tile(np.concatenate([[0.0], et_arr]), n_don)
    for key in ("f_cik", "f_t", "f_nk"):
        pars[key] = np.repeat(np.broadcast_to(getattr(product, key), (n_don,)), n_et)
    if block is not None:
        pars[f"block_{block}"] = 1.0
    pars.update(parameters or {})
    tell = time_progress(progress, spans, len(spans) - 1, 24.0)
    r = simulate(model, None, hours, times=[0.0, hours], parameters=pars, seed=seed,
                 progress=None if tell is None else (lambda t: tell(t / 24)))
    live = r["live_targets"][-1].reshape(n_don, n_et)
    lysis = 100 * (1 - live[:, 1:] / live[:, :1])
    return AssayRun(product.name, target_name, et_arr, float(hours), block, lysis.T)
