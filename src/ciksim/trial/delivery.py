"""Intention to treat: whether each patient of a CIK arm actually receives the product,
and what happens to a patient after relapse (for overall survival).

Delivery (T5): a patient's product is manufactured (rate ``manufactured``); if made, it
reaches the target dose (``target_dose_reached``) or is infused at a reduced dose (a
fraction ``below_target_dose_fraction`` of every planned infusion); independently, a made
product is not infused (``not_infused``) for a reason drawn from ``not_infused_reasons``.
Patients without an infusion are simulated as chemotherapy alone but stay in their arm
(intention to treat); the per-protocol set drops them.

Defaults are the Bergamo 2025 haploidentical CIK trial (clinical_more M14): 44 of 47
products made, 36 of 44 reaching the target dose, 14 of 44 patients with a product not
infused (7 progression, 4 GvHD, 2 infection, 1 withdrawal).

Every draw of patient ``i`` of arm ``a`` comes from its own stream keyed by (trial seed,
arm, patient, purpose), so a patient's delivery and post-relapse survival are the same
whatever chunk, worker or backend simulates it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ciksim.errors import DataError

#: Delivery labels (``delivery`` column).
AS_PLANNED = "as planned"
BELOW_TARGET = "below target dose"
NOT_MANUFACTURED = "not manufactured"
NOT_INFUSED = "not infused"
NO_PRODUCT = "no product planned"
INFUSED = (AS_PLANNED, BELOW_TARGET)

#: Where each default comes from (listed in reports).
SOURCES = {
    "manufactured": "clinical_more M14 (Bergamo 2025, NCT03821519): 44 of 47 products made",
    "target_dose_reached": "clinical_more M14: target dose reached in 36 of 44 products",
    "not_infused": "clinical_more M14: 14 of 44 patients with a product not infused",
    "not_infused_reasons": "clinical_more M14: 7 progression, 4 GvHD, 2 infection, "
                           "1 withdrawal",
    "below_target_dose_fraction": "assumed: M14 does not report the dose given below target; "
                                  "half of each planned infusion (plausible 0.1-1)",
    "post_relapse_median_months": "clinical S7 (relapse treated with lymphodepletion + DLI: "
                                  "2-year OS 19%, so an exponential median of 10 months); a "
                                  "proxy, plausible 4-24 months",
}

_FIELDS = {"enabled", "manufactured", "target_dose_reached", "not_infused",
           "not_infused_reasons", "below_target_dose_fraction"}


def _rate(data: Mapping[str, Any], key: str, default: float, where: str) -> float:
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not (0 <= v <= 1):
        raise DataError(f"{where}.{key}: {v!r} is not a rate; give a fraction in [0, 1] "
                        f"(default {default:.4g}, {SOURCES[key].split(':')[0]})")
    return float(v)


@dataclass(frozen=True)
class Delivery:
    """Per-patient product delivery rates (fractions in [0, 1]); see the module docstring."""

    enabled: bool = True
    manufactured: float = 44 / 47
    target_dose_reached: float = 36 / 44
    not_infused: float = 14 / 44
    not_infused_reasons: Mapping[str, float] = field(default_factory=lambda: {
        "progression": 7.0, "GvHD": 4.0, "infection": 2.0, "withdrawal": 1.0})
    below_target_dose_fraction: float = 0.5

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "delivery") -> Delivery:
        """Validated delivery settings; a rate outside [0, 1] raises ``DataError``."""
        data = dict(data or {})
        extra = sorted(set(data) - _FIELDS)
        if extra:
            raise DataError(f"{where}: unknown field(s) {', '.join(extra)}; allowed: "
                            f"{', '.join(sorted(_FIELDS))}")
        d = cls()
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise DataError(f"{where}.enabled: give true or false")
        reasons = data.get("not_infused_reasons", d.not_infused_reasons)
        if not isinstance(reasons, Mapping) or not reasons or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not
                math.isfinite(v) or v < 0 for v in reasons.values()) \
                or sum(reasons.values()) <= 0:
            raise DataError(f"{where}.not_infused_reasons: give a table of reason = count "
                            "(or share), each >= 0 and not all 0, e.g. "
                            "{ progression = 7, infection = 2 }")
        frac = data.get("below_target_dose_fraction", d.below_target_dose_fraction)
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not \
                (0 < frac <= 1):
            raise DataError(f"{where}.below_target_dose_fraction: {frac!r} must be in (0, 1] "
                            "(the share of each planned infusion given below target)")
        return cls(enabled=enabled,
                   manufactured=_rate(data, "manufactured", d.manufactured, where),
                   target_dose_reached=_rate(data, "target_dose_reached",
                                             d.target_dose_reached, where),
                   not_infused=_rate(data, "not_infused", d.not_infused, where),
                   not_infused_reasons={str(k): float(v) for k, v in reasons.items()},
                   below_target_dose_fraction=float(frac))

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "manufactured": self.manufactured,
                "target_dose_reached": self.target_dose_reached,
                "not_infused": self.not_infused,
                "not_infused_reasons": dict(self.not_infused_reasons),
                "below_target_dose_fraction": self.below_target_dose_fraction}

    def draw(self, arm_seed: int, patients: np.ndarray) -> pd.DataFrame:
        """Per patient of a CIK arm: ``delivery`` label, ``not_infused_reason`` and
        ``dose_fraction`` (share of each planned infusion given: 1, the below-target share
        or 0)."""
        n = len(patients)
        if not self.enabled:
            return pd.DataFrame({"delivery": [AS_PLANNED] * n, "not_infused_reason": [""] * n,
                                 "dose_fraction": np.ones(n)})
        key = [int(arm_seed), zlib.crc32(b"delivery")]
        u = np.array([np.random.default_rng(np.random.SeedSequence(key, spawn_key=(int(i),)))
                      .random(4) for i in patients]).reshape(n, 4)
        names = list(self.not_infused_reasons)
        w = np.array([self.not_infused_reasons[k] for k in names], float)
        cum = np.cumsum(w) / w.sum()
        made = u[:, 0] < self.manufactured
        full = u[:, 1] < self.target_dose_reached
        infused = u[:, 2] >= self.not_infused
        reason_idx = np.minimum(np.searchsorted(cum, u[:, 3], side="right"), len(names) - 1)
        label = np.where(~made, NOT_MANUFACTURED,
                         np.where(~infused, NOT_INFUSED,
                                  np.where(full, AS_PLANNED, BELOW_TARGET)))
        reason = np.where(label == NOT_INFUSED, np.array(names, dtype=object)[reason_idx], "")
        frac = np.select([label == AS_PLANNED, label == BELOW_TARGET],
                         [1.0, self.below_target_dose_fraction], 0.0)
        return pd.DataFrame({"delivery": label.astype(object),
                             "not_infused_reason": reason.astype(object),
                             "dose_fraction": frac})


def per_protocol(df: pd.DataFrame) -> pd.DataFrame:
    """The per-protocol set: control patients and CIK patients who received an infusion."""
    if "delivery" not in df:
        return df
    return df[df["delivery"].isin((*INFUSED, NO_PRODUCT))]


@dataclass(frozen=True)
class AfterRelapse:
    """Survival after relapse, for overall survival: exponential with median
    ``median_months`` (default and source in :data:`SOURCES`)."""

    median_months: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.median_months) and self.median_months > 0):
            raise DataError("population.post_relapse_median_months: must be > 0 months "
                            f"(default 10, {SOURCES['post_relapse_median_months']})")

    def overall_survival(self, arm_seed: int, patients: np.ndarray, duration: np.ndarray,
                         events: np.ndarray, follow_up_months: float
                         ) -> tuple[np.ndarray, np.ndarray]:
        """OS duration (months) and event (1: died) from each patient's first event:
        death in remission is death; after relapse, death follows an exponential time."""
        from ciksim.trial.estimands import event_labels

        labels = event_labels(events)
        key = [int(arm_seed), zlib.crc32(b"post-relapse")]
        scale = self.median_months / math.log(2)
        extra = np.array([np.random.default_rng(np.random.SeedSequence(
            key, spawn_key=(int(i),))).exponential(scale) for i in patients])
        death = np.where(labels == "death", duration,
                         np.where(labels == "relapse", duration + extra, np.inf))
        died = death <= follow_up_months
        return np.where(died, death, follow_up_months), died.astype(int)
