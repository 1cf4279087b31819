"""Trial specification (TOML): population, arms, size, follow-up, endpoint, seed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from ciksim.analysis.patient import CikSchedule
from ciksim.errors import DataError
from ciksim.models.patient import Scenario
from ciksim.trial.delivery import AfterRelapse, Delivery
from ciksim.trial.estimands import Analysis

if TYPE_CHECKING:
    from ciksim.trial.allo import AlloTrialSpec

#: Defaults of the ``[posterior]`` table.
POSTERIOR_DEFAULTS: dict[str, Any] = {"source": "shipped", "draws": 200, "cohort": 2000}


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
    def load(cls, path: str | Path) -> Spec:
        """Read a trial spec file (UTF-8 TOML), validated by its schema; relative product
        paths are resolved from the spec's folder. An allo population gives an
        :class:`~ciksim.trial.allo.AlloTrialSpec`."""
        from ciksim.schemas import read_toml

        return cls.from_dict(read_toml(path, what="trial spec"), origin=str(path),
                             base_dir=str(Path(path).parent))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "trial",
                  base_dir: str | None = None) -> Spec:
        """Build from parsed TOML, validated by :func:`ciksim.schemas.trial_schema`; errors
        name the path (``arms[1].cik.dose_per_kg``), the value and the fix. ``base_dir``
        resolves relative product paths (the spec's folder when read from a file). A
        population whose scenario is an allo scenario (``allo-aml-cr``) routes to
        :class:`~ciksim.trial.allo.AlloTrialSpec` (its own schema)."""
        from ciksim.schemas import table_values, validate
        from ciksim.schemas.scenario import trial_schema
        from ciksim.trial.allo import AlloTrialSpec, is_allo

        if is_allo(data):
            return AlloTrialSpec.from_dict(data, origin=origin, base_dir=base_dir)
        spec: Any = validate(trial_schema(), data, origin=origin)
        pop = spec.population
        base = Scenario.load(pop.scenario)
        given = table_values(pop.parameters) if pop.parameters else {}
        spreads = table_values(pop.variability) if pop.variability else {}
        scen_dict = {"name": base.name, "description": base.description,
                     "parameters": {**base.parameters, **given},
                     "variability": {**base.variability, **spreads},
                     "relapse_threshold": base.relapse_threshold,
                     "events": [_event_dict(e) for e in base.protocol.events],
                     "triggers": [t.as_dict() for t in base.protocol.triggers]}
        scenario = Scenario.from_dict(scen_dict, origin=f"{origin}: population")
        mix = {k.lower(): v for k, v in (pop.subtypes or {}).items()}
        arms = tuple(
            Arm(arm.name or f"arm {i + 1}",
                None if arm.cik is None else CikSchedule(**arm.cik.model_dump()))
            for i, arm in enumerate(spec.arms))
        prod = spec.product
        ana = spec.analysis
        analysis = Analysis(ana.endpoint, ana.test, ana.horizon_months, ana.alpha)
        if analysis.endpoint == "grfs":
            raise DataError(f"{origin}: analysis.endpoint: grfs (GvHD-free, relapse-free "
                            "survival) needs an allo population (population.scenario = "
                            "\"allo-aml-cr\"); use rfs or os here")
        analysis.check(12.0 * spec.follow_up_years, f"{origin}: analysis")
        post = {**POSTERIOR_DEFAULTS, "n_per_arm": spec.patients_per_arm,
                **spec.posterior.model_dump(exclude_none=True)}
        if prod.donor is not None:
            from ciksim.models.culture import Donor

            try:
                Donor.load(prod.donor)
            except DataError as exc:
                raise DataError(f"{origin}: product.donor: {exc}") from exc
        return cls(
            name=spec.name, description=spec.description, seed=spec.seed,
            patients_per_arm=spec.patients_per_arm, follow_up_years=spec.follow_up_years,
            relapse=spec.relapse, scenario=scenario, subtype_mix=mix, arms=arms,
            product_protocol=prod.culture_protocol or "cik-gmp", product_folder=prod.run_folder,
            product_donors=prod.donors, chunk_size=spec.chunk_size,
            raw=json.loads(json.dumps(dict(data))),
            delivery=Delivery.from_dict(data.get("delivery"), f"{origin}: delivery"),
            after_relapse=AfterRelapse(pop.post_relapse_median_months), analysis=analysis,
            posterior=post, product_release=prod.release_data,
            product_donor=prod.donor or "healthy", product_start_cells=prod.start_cells,
            base_dir=base_dir,
        )

    def with_patients(self, n: int) -> Spec:
        """The same trial with ``n`` patients per arm."""
        raw = {**self.raw, "patients_per_arm": int(n)}
        return TrialSpec.from_dict(raw, origin=f"trial {self.name!r}", base_dir=self.base_dir)

    def with_seed(self, seed: int) -> Spec:
        """The same trial with another seed (``--seed``; checked by the trial schema)."""
        return TrialSpec.from_dict({**self.raw, "seed": seed}, origin=f"trial {self.name!r}",
                                   base_dir=self.base_dir)

    def digest(self) -> str:
        """Fingerprint of everything that determines the patients' numbers."""
        return spec_digest(self.raw)

    def arm_seed(self, arm: int) -> int:
        """Each arm has its own patients: a seed derived from the trial seed and arm."""
        return arm_seed(self.seed, arm)


#: A trial specification: autologous (:class:`TrialSpec`) or allogeneic.
Spec: TypeAlias = "TrialSpec | AlloTrialSpec"


def spec_digest(raw: Mapping[str, Any]) -> str:
    """Fingerprint of a trial specification as written (all but ``chunk_size``, which does
    not change the numbers) and the package version: what determines the patients."""
    from ciksim._version import __version__

    text = json.dumps({"spec": {k: v for k, v in raw.items() if k != "chunk_size"},
                       "ciksim": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def arm_seed(seed: int, arm: int) -> int:
    """Each arm has its own patients: a seed derived from the trial ``seed`` and ``arm``."""
    return int(np.random.SeedSequence([seed, arm]).generate_state(1)[0])


def load_spec(spec: str | Path | Spec, n_per_arm: int | None = None) -> Spec:
    """A trial specification from a TOML file (or as given), with ``n_per_arm`` patients per
    arm when given."""
    from ciksim.trial.allo import AlloTrialSpec

    s = spec if isinstance(spec, (TrialSpec, AlloTrialSpec)) else TrialSpec.load(spec)
    if n_per_arm is not None:
        if isinstance(n_per_arm, bool) or n_per_arm < 1:
            raise DataError("n_per_arm: patients per arm must be >= 1")
        s = s.with_patients(n_per_arm)
    return s


def _event_dict(e: Any) -> dict[str, Any]:
    return {"day": e.day, "action": e.action, "dose": e.dose, "amount": e.amount}
