"""Trial specification (TOML): population, arms, size, follow-up, endpoint, seed."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ciksim.analysis.patient import RELAPSE_DEFINITIONS, CikSchedule
from ciksim.errors import DataError
from ciksim.models.patient import Scenario, subtypes
from ciksim.trial.delivery import AfterRelapse, Delivery
from ciksim.trial.estimands import Analysis

_TOP = {"name", "description", "seed", "patients_per_arm", "follow_up_years", "relapse",
        "population", "product", "arms", "chunk_size", "delivery", "analysis", "posterior"}
_POP = {"scenario", "subtypes", "variability", "parameters", "post_relapse_median_months"}
_ANALYSIS = {"endpoint", "test", "horizon_months", "alpha"}
_POSTERIOR = {"source", "draws", "cohort", "n_per_arm"}
_PRODUCT = {"culture_protocol", "run_folder", "release_data", "donors", "donor", "start_cells"}
_PRODUCT_SOURCES = ("culture_protocol", "run_folder", "release_data")
_ARM = {"name", "cik"}
_CIK = {"dose_per_kg", "infusions", "interval_days", "first_day", "il2_support"}


#: Defaults of the ``[posterior]`` table.
POSTERIOR_DEFAULTS: dict[str, Any] = {"source": "shipped", "draws": 200, "cohort": 1000}


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise DataError(f"{where}: unknown field(s) {', '.join(extra)}; allowed: "
                        f"{', '.join(sorted(allowed))}")


@dataclass(frozen=True)
class Arm:
    """A trial arm: chemotherapy alone (``cik`` None) or with a CIK schedule."""

    name: str
    cik: CikSchedule | None = None


@dataclass(frozen=True)
class TrialSpec:
    """A validated trial. ``raw`` keeps the parsed TOML (for the manifest and workers)."""

    name: str
    description: str
    seed: int
    patients_per_arm: int
    follow_up_years: float
    relapse: str | float
    scenario: Scenario
    subtype_mix: Mapping[str, float]
    arms: tuple[Arm, ...]
    product_protocol: str
    product_folder: str | None
    product_donors: int
    chunk_size: int
    raw: Mapping[str, Any] = field(repr=False)
    delivery: Delivery = field(default_factory=Delivery)
    after_relapse: AfterRelapse = field(default_factory=AfterRelapse)
    analysis: Analysis = field(default_factory=Analysis)
    #: Trials over draws: ``source`` ("shipped", "prior" or a posterior path), ``draws``,
    #: ``cohort`` (virtual patients per arm per draw) and ``n_per_arm`` (patients per arm of
    #: the planned trial whose assurance is reported; default ``patients_per_arm``).
    posterior: Mapping[str, Any] = field(default_factory=lambda: dict(POSTERIOR_DEFAULTS))
    product_release: str | None = None
    product_donor: str = "healthy"
    product_start_cells: float | None = None
    base_dir: str | None = field(default=None, compare=False)

    @classmethod
    def load(cls, path: str | Path) -> TrialSpec:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"trial spec {str(p)!r} does not exist")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"{p}: not valid TOML ({exc})") from exc
        return cls.from_dict(data, origin=str(p), base_dir=str(p.parent))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "trial",
                  base_dir: str | None = None) -> TrialSpec:
        """A validated spec; ``base_dir`` resolves relative product paths (the spec's
        folder when read from a file)."""
        _check_keys(data, _TOP, origin)
        for key in ("name", "arms", "population"):
            if key not in data:
                raise DataError(f"{origin}: missing field {key!r}")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise DataError(f"{origin}: seed must be a whole number >= 0")
        n = data.get("patients_per_arm", 1000)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DataError(f"{origin}: patients_per_arm must be a whole number >= 1")
        years = data.get("follow_up_years", 4)
        if isinstance(years, bool) or not isinstance(years, (int, float)) or not \
                (0 < years <= 30):
            raise DataError(f"{origin}: follow_up_years must be in (0, 30]")
        relapse = data.get("relapse", "haematologic")
        if isinstance(relapse, str) and relapse not in RELAPSE_DEFINITIONS:
            raise DataError(f"{origin}: relapse must be {' or '.join(RELAPSE_DEFINITIONS)} or "
                            "a blast fraction")
        if not isinstance(relapse, str) and not (0 < float(relapse) <= 1):
            raise DataError(f"{origin}: relapse fraction must be in (0, 1]")
        chunk = data.get("chunk_size", 1000)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise DataError(f"{origin}: chunk_size must be a whole number >= 1")
        pop = data["population"]
        _check_keys(pop, _POP, f"{origin}: population")
        base = Scenario.load(pop.get("scenario", "aml-cr1"))
        scen_dict = {"name": base.name, "description": base.description,
                     "parameters": {**base.parameters, **dict(pop.get("parameters", {}))},
                     "variability": {**base.variability, **dict(pop.get("variability", {}))},
                     "relapse_threshold": base.relapse_threshold,
                     "events": [_event_dict(e) for e in base.protocol.events]}
        scenario = Scenario.from_dict(scen_dict, origin=f"{origin}: population")
        mix = {str(k).lower(): float(v) for k, v in dict(pop.get("subtypes", {})).items()}
        known = subtypes()
        for k, v in mix.items():
            if k not in known:
                raise DataError(f"{origin}: population.subtypes.{k} is not a known subtype "
                                f"({', '.join(known)})")
            if not (0 <= v <= 1):
                raise DataError(f"{origin}: population.subtypes.{k} must be a share in [0, 1]")
        if mix and not math.isclose(sum(mix.values()), 1.0, abs_tol=1e-6):
            raise DataError(f"{origin}: population.subtypes shares add up to "
                            f"{sum(mix.values()):g}; they must add up to 1")
        prod = dict(data.get("product", {}))
        _check_product(prod, f"{origin}: product")
        arms = []
        names = set()
        for i, raw in enumerate(data["arms"]):
            where = f"{origin}: arms[{i}]"
            _check_keys(raw, _ARM, where)
            name = str(raw.get("name", f"arm {i + 1}"))
            if name in names:
                raise DataError(f"{where}: arm name {name!r} is used twice")
            names.add(name)
            cik = None
            if "cik" in raw:
                c = dict(raw["cik"])
                _check_keys(c, _CIK, f"{where}.cik")
                try:
                    cik = CikSchedule(float(c.get("dose_per_kg", 5e7)),
                                      int(c.get("infusions", 3)),
                                      float(c.get("interval_days", 21)),
                                      float(c.get("first_day", 30)),
                                      bool(c.get("il2_support", False)))
                except (TypeError, ValueError) as exc:
                    raise DataError(f"{where}.cik: {exc}") from exc
                except DataError as exc:
                    raise DataError(f"{where}.cik: {exc}") from exc
            arms.append(Arm(name, cik))
        if len(arms) < 1:
            raise DataError(f"{origin}: give at least one arm ([[arms]])")
        after = pop.get("post_relapse_median_months", 10.0)
        if isinstance(after, bool) or not isinstance(after, (int, float)):
            raise DataError(f"{origin}: population.post_relapse_median_months must be a "
                            "number of months > 0")
        ana = dict(data.get("analysis", {}))
        _check_keys(ana, _ANALYSIS, f"{origin}: analysis")
        try:
            analysis = Analysis(str(ana.get("endpoint", "rfs")), str(ana.get("test", "logrank")),
                                float(ana.get("horizon_months", 36.0)),
                                float(ana.get("alpha", 0.05)))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{origin}: analysis: {exc}") from exc
        analysis.check(12.0 * float(years), f"{origin}: analysis")
        post = {**POSTERIOR_DEFAULTS, **dict(data.get("posterior", {}))}
        _check_keys(post, _POSTERIOR, f"{origin}: posterior")
        if not isinstance(post["source"], str) or not post["source"]:
            raise DataError(f"{origin}: posterior.source must be \"shipped\", \"prior\" or the "
                            "path of a saved posterior")
        post.setdefault("n_per_arm", n)
        for key, low in (("draws", 0), ("cohort", 20), ("n_per_arm", 1)):
            v = post[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise DataError(f"{origin}: posterior.{key} must be a whole number >= {low}"
                                + (" (0: no trial over draws)" if key == "draws" else ""))
        return cls(
            name=str(data["name"]), description=str(data.get("description", "")), seed=seed,
            patients_per_arm=n, follow_up_years=float(years), relapse=relapse,
            scenario=scenario, subtype_mix=mix, arms=tuple(arms),
            product_protocol=str(prod.get("culture_protocol", "cik-gmp")),
            product_folder=prod.get("run_folder"), product_donors=int(prod.get("donors", 200)),
            chunk_size=chunk, raw=json.loads(json.dumps(dict(data))),
            delivery=Delivery.from_dict(data.get("delivery"), f"{origin}: delivery"),
            after_relapse=AfterRelapse(float(after)), analysis=analysis, posterior=post,
            product_release=prod.get("release_data"),
            product_donor=str(prod.get("donor", "healthy")),
            product_start_cells=(float(prod["start_cells"]) if "start_cells" in prod
                                 else None),
            base_dir=base_dir,
        )

    def with_patients(self, n: int) -> TrialSpec:
        """The same trial with ``n`` patients per arm."""
        raw = {**self.raw, "patients_per_arm": int(n)}
        return TrialSpec.from_dict(raw, origin=f"trial {self.name!r}", base_dir=self.base_dir)

    def with_seed(self, seed: int) -> TrialSpec:
        """The same trial with another seed (``--seed``)."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise DataError(f"seed: must be a whole number >= 0, got {seed!r}")
        return TrialSpec.from_dict({**self.raw, "seed": int(seed)}, origin=f"trial {self.name!r}",
                                   base_dir=self.base_dir)

    def digest(self) -> str:
        """Fingerprint of everything that determines the patients' numbers."""
        from ciksim._version import __version__

        text = json.dumps({"spec": {k: v for k, v in self.raw.items() if k != "chunk_size"},
                           "ciksim": __version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def arm_seed(self, arm: int) -> int:
        """Each arm has its own patients: a seed derived from the trial seed and arm."""
        return int(np.random.SeedSequence([self.seed, arm]).generate_state(1)[0])


def _check_product(prod: Mapping[str, Any], where: str) -> None:
    """The ``[product]`` table: one source of lots (a built-in or file culture protocol, a
    culture run folder, or release data), with the culture options only for a protocol."""
    _check_keys(prod, _PRODUCT, where)
    given = [k for k in _PRODUCT_SOURCES if k in prod]
    if len(given) > 1:
        raise DataError(f"{where}: give one of {', '.join(_PRODUCT_SOURCES)}, not "
                        f"{' and '.join(given)}")
    for key in given:
        if not isinstance(prod[key], str) or not prod[key].strip():
            raise DataError(f"{where}.{key}: give a name or a path as text")
    if given and given[0] != "culture_protocol":
        extra = [k for k in ("donors", "donor", "start_cells") if k in prod]
        if extra:
            raise DataError(f"{where}: {', '.join(extra)} apply to a culture_protocol only; "
                            f"drop them or use culture_protocol instead of {given[0]}")
    donors = prod.get("donors", 200)
    if isinstance(donors, bool) or not isinstance(donors, int) or donors < 1:
        raise DataError(f"{where}.donors: need a whole number >= 1 (lots to draw from)")
    start = prod.get("start_cells", 1.0)
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not \
            (0 < start < float("inf")):
        raise DataError(f"{where}.start_cells: need a number of cells > 0, e.g. 1e10")
    if "donor" in prod:
        from ciksim.models.culture import Donor

        try:
            Donor.load(str(prod["donor"]))
        except DataError as exc:
            raise DataError(f"{where}.donor: {exc}") from exc


def _event_dict(e: Any) -> dict[str, Any]:
    return {"day": e.day, "action": e.action, "dose": e.dose, "amount": e.amount}
