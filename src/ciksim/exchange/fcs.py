"""Flow cytometry in: the ``phenotype`` job reads FCS files (flowio), gates CD3/CD56 and
writes each sample's CD3+CD56+, CD3+CD56- and CD3-CD56+ shares.

Gate strategy, by default (thresholds in the file's channel values, shown in the output):

1. lymphocytes: ``fsc_min <= FSC-A <= fsc_max`` and ``SSC-A <= ssc_max`` (debris and
   granulocytes/monocytes out; channels found by name ``FSC-A``/``FSC-H``/``FSC``...);
2. among lymphocytes, quadrants on CD3 and CD56 at ``cd3_min`` and ``cd56_min``: CD3+CD56+
   (CIK), CD3+CD56- (T), CD3-CD56+ (NK); shares are % of lymphocytes.

Or a Gating-ML 2.0 file the user gives (read with FlowKit): it must define gates named
``CD3pos_CD56pos``, ``CD3pos_CD56neg`` and ``CD3neg_CD56pos`` (Gating-ML ids cannot hold
``+``; ``pos``/``neg``, ``+``/``-``, case, spaces and ``_`` are all read alike), e.g. the
quadrants of a quadrant gate; each share is the gate's count as % of its parent gate.
The CD3 and CD56 channels are found by marker (``$PnS``) or channel name (``$PnN``), or
named by the user.

Output: ``phenotype.csv`` (one row per sample; share columns named as the product release
data reads them: ``cd3cd56_pct``, ``cd3_cd56neg_pct``, ``nk_pct``), ``phenotype.json`` (the
gate strategy with its thresholds and the channels used), and, when the culture day is
given, ``counts.csv`` in the tidy format ``ciksim fit culture`` reads
(``donor,day,quantity,value``; quantities ``cd3cd56_pct``, ``cd3_pct``, ``nk_pct``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ciksim.errors import DataError

DEFAULT_GATE = {"fsc_min": 20_000.0, "fsc_max": 150_000.0, "ssc_max": 60_000.0,
                "cd3_min": 1_000.0, "cd56_min": 1_000.0}
POPULATIONS = {"cd3cd56_pct": "CD3+CD56+", "cd3_cd56neg_pct": "CD3+CD56-",
               "nk_pct": "CD3-CD56+"}
EXAMPLE_NAME = "cik-day21-example.fcs"
#: The synthetic example's populations: share of events and mean log10 CD3, CD56, FSC, SSC.
_EXAMPLE = {"CD3+CD56+": (0.36, 3.8, 3.6, 4.85, 4.3), "CD3+CD56-": (0.44, 3.8, 2.3, 4.8, 4.25),
            "CD3-CD56+": (0.08, 2.2, 3.7, 4.85, 4.35), "CD3-CD56-": (0.04, 2.2, 2.2, 4.9, 4.4),
            "debris": (0.05, 2.5, 2.5, 3.8, 3.6), "granulocytes": (0.03, 2.4, 2.6, 5.0, 5.0)}


@dataclass(frozen=True)
class PhenotypeRun:
    """Shares per sample (``table``) and the gate strategy used (``gate``)."""

    table: pd.DataFrame
    gate: Mapping[str, Any]
    day: float | None = None
    donor: str | None = None
    channels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def counts(self) -> pd.DataFrame:
        """The shares as ``ciksim fit culture`` reads them (needs the culture ``day``)."""
        if self.day is None:
            raise DataError("day: give the culture day of the samples to write counts.csv")
        rows = []
        for r in self.table.itertuples():
            donor = self.donor or Path(r.file).stem
            for q in ("cd3cd56_pct", "cd3_pct", "nk_pct"):
                rows.append((donor, self.day, q, float(getattr(r, q))))
        return pd.DataFrame(rows, columns=["donor", "day", "quantity", "value"])

    def write(self, out: str | Path) -> Path:
        """Write phenotype.csv, phenotype.json (and counts.csv with a day), together."""
        from ciksim.io import staged_output

        with staged_output(out) as stage:
            stage.table(self.table, "phenotype", "csv")
            stage.json({"gate": dict(self.gate), "channels": dict(self.channels),
                        "day": self.day, "donor": self.donor}, "phenotype")
            if self.day is not None:
                stage.table(self.counts(), "counts", "csv")
        return Path(out)


def _read(path: Path):
    import flowio

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return flowio.FlowData(str(path))
    except Exception as exc:  # flowio raises several types for a broken file
        raise DataError(f"{path}: not a readable FCS file ({type(exc).__name__}: {exc}); "
                        "export the sample again as FCS 3.0/3.1 from the cytometer "
                        "software") from exc


def _channel_list(fd) -> list[tuple[str, str]]:
    return [(str(c.get("pnn", "")), str(c.get("pns", "") or "")) for _, c in
            sorted(fd.channels.items(), key=lambda kv: int(kv[0]))]


def _find(channels: list[tuple[str, str]], marker: str, given: str | None, path: Path
          ) -> int:
    shown = ", ".join(f"{n} ({s})" if s else n for n, s in channels)
    if given is not None:
        for i, (n, s) in enumerate(channels):
            if given in (n, s):
                return i
        raise DataError(f"{path}: no channel named {given!r}; channels found: {shown}")
    pattern = re.compile(rf"(?<![A-Za-z0-9]){marker}(?![0-9])", re.IGNORECASE)
    hits = [i for i, (n, s) in enumerate(channels) if pattern.search(s) or pattern.search(n)]
    if len(hits) != 1:
        what = "no" if not hits else "more than one"
        opt = "cd3_channel" if marker == "CD3" else "cd56_channel"
        raise DataError(f"{path}: {what} {marker} channel; channels found: {shown}. Name the "
                        f"{marker} channel with {opt} (--{opt.replace('_', '-')})")
    return hits[0]


def _scatter(channels: list[tuple[str, str]], kind: str, path: Path) -> int:
    for suffix in ("-A", "-H", ""):
        for i, (n, _) in enumerate(channels):
            if n.upper() == f"{kind}{suffix}":
                return i
    shown = ", ".join(n for n, _ in channels)
    raise DataError(f"{path}: no {kind} channel for the lymphocyte gate; channels found: "
                    f"{shown}. Give a Gating-ML file (gate_file) instead")


def phenotype(files: Sequence[str | Path], *, gate_file: str | Path | None = None,
              thresholds: Mapping[str, float] | None = None, cd3_channel: str | None = None,
              cd56_channel: str | None = None, day: float | None = None,
              donor: str | None = None) -> PhenotypeRun:
    """Gate each FCS file and return the CD3/CD56 shares (see the module docstring).

    ``thresholds`` change the default gate (keys of ``DEFAULT_GATE``); ``day`` (days since
    seeding) and ``donor`` (default: each sample's file name) label ``counts.csv``.
    """
    if not files:
        raise DataError("phenotype: give one or more FCS files")
    if day is not None and (not math.isfinite(day) or day < 0):
        raise DataError(f"day: the culture day must be a number >= 0, got {day!r}")
    gate = dict(DEFAULT_GATE)
    for key, value in (thresholds or {}).items():
        if key not in DEFAULT_GATE:
            raise DataError(f"thresholds: unknown key {key!r}; use {', '.join(DEFAULT_GATE)}")
        gate[key] = float(value)
    strategy = _load_gating_ml(Path(gate_file)) if gate_file is not None else None
    rows, used = [], {}
    for f in files:
        path = Path(f)
        fd = _read(path)
        channels = _channel_list(fd)
        i3 = _find(channels, "CD3", cd3_channel, path)
        i56 = _find(channels, "CD56", cd56_channel, path)
        used[path.name] = {"CD3": channels[i3][0], "CD56": channels[i56][0]}
        if strategy is not None:
            counts, parent = _gate_with_file(strategy, path)
        else:
            data = np.asarray(fd.as_array(), dtype=float)
            fsc, ssc = _scatter(channels, "FSC", path), _scatter(channels, "SSC", path)
            lymph = ((data[:, fsc] >= gate["fsc_min"]) & (data[:, fsc] <= gate["fsc_max"])
                     & (data[:, ssc] <= gate["ssc_max"]))
            cd3 = data[lymph, i3] >= gate["cd3_min"]
            cd56 = data[lymph, i56] >= gate["cd56_min"]
            counts = {"CD3+CD56+": int(np.sum(cd3 & cd56)), "CD3+CD56-": int(np.sum(cd3 & ~cd56)),
                      "CD3-CD56+": int(np.sum(~cd3 & cd56))}
            parent = {k: int(lymph.sum()) for k in counts}
        if min(parent.values()) == 0:
            raise DataError(f"{path}: no events in the parent gate; check the gate thresholds "
                            f"({gate}) against the file's channel values")
        row = {"sample": str(fd.text.get("fil") or path.name), "file": path.name,
               "events": int(fd.event_count),
               "lymphocytes": int(next(iter(parent.values())))}
        for col, pop in POPULATIONS.items():
            row[col] = 100.0 * counts[pop] / parent[pop]
        row["cd3_pct"] = row["cd3cd56_pct"] + row["cd3_cd56neg_pct"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["units"] = {"events": "1", "lymphocytes": "1", "file": "label",
                            **dict.fromkeys((*POPULATIONS, "cd3_pct"), "%")}
    table.attrs["descriptions"] = {"lymphocytes": "events in the lymphocyte (parent) gate"}
    shown = ({"strategy": "Gating-ML", "file": str(gate_file), "populations":
              list(POPULATIONS.values())} if strategy is not None else
             {"strategy": "default: lymphocytes by FSC/SSC, then CD3/CD56 quadrants",
              "thresholds": gate})
    return PhenotypeRun(table, shown, None if day is None else float(day), donor, used)


def _load_gating_ml(path: Path):
    try:
        import flowkit as fk
    except ImportError as exc:
        raise DataError("gate_file: reading Gating-ML needs FlowKit: pip install flowkit "
                        "(or pip install 'ciksim[interop]')") from exc
    if not path.is_file():
        raise DataError(f"gate_file: {path} not found")
    try:
        strategy = fk.parse_gating_xml(str(path))
    except Exception as exc:
        raise DataError(f"gate_file: {path} is not a Gating-ML 2.0 file ({exc}); export the "
                        "gates as Gating-ML 2.0 (FlowJo, FlowKit, Cytobank)") from exc
    names = {_key(g[0]): g for g in strategy.get_gate_ids()}
    missing = [p for p in POPULATIONS.values() if _key(p) not in names]
    if missing:
        found = ", ".join(g[0] for g in strategy.get_gate_ids()) or "none"
        raise DataError(f"gate_file: {path} does not match: it has no gate named "
                        f"{', '.join(missing)} (gates found: {found}); name the three "
                        "population gates CD3pos_CD56pos, CD3pos_CD56neg and CD3neg_CD56pos "
                        "(Gating-ML ids cannot hold '+')")
    return strategy, names


def _key(name: str) -> str:
    """``CD3pos_CD56neg``, ``cd3+ cd56-`` and ``CD3+CD56−`` all read ``cd3+cd56-``."""
    key = name.lower().replace("−", "-").replace("pos", "+").replace("neg", "-")
    return "".join(c for c in key if c not in " _.")


def _gate_with_file(loaded, path: Path) -> tuple[dict[str, int], dict[str, int]]:
    import flowkit as fk

    strategy, names = loaded
    try:
        results = strategy.gate_sample(fk.Sample(str(path)))
    except Exception as exc:
        raise DataError(f"{path}: the gate file does not match this sample ({exc}); its "
                        "gates must use the sample's channel names") from exc
    counts, parent = {}, {}
    for pop in POPULATIONS.values():
        name, gate_path = names[_key(pop)]
        counts[pop] = int(results.get_gate_count(name, gate_path))
        up = strategy.get_parent_gate_id(name, gate_path)
        parent[pop] = (int(results.get_gate_count(up[0], up[1])) if up and up[0] != "root"
                       else int(fk.Sample(str(path)).event_count))
    return counts, parent


def example_fcs(folder: str | Path, *, events: int = 4000, seed: int = 21) -> Path:
    """Write the synthetic example (a day-21 CIK culture: FSC-A, SSC-A, CD3 on FITC-A, CD56
    on PE-A, ``events`` events; same seed, same bytes) and return its path."""
    import flowio

    rng = np.random.default_rng(seed)
    blocks = []
    for share, cd3, cd56, fsc, ssc in _EXAMPLE.values():
        n = round(share * events)
        means = np.array([fsc, ssc, cd3, cd56])
        blocks.append(10 ** (means + 0.12 * rng.standard_normal((n, 4))))
    data = np.vstack(blocks)[rng.permutation(sum(len(b) for b in blocks))]
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / EXAMPLE_NAME
    with path.open("wb") as fh:
        flowio.create_fcs(fh, data.astype(np.float32).ravel(), ["FSC-A", "SSC-A", "FITC-A",
                                                                "PE-A"],
                          opt_channel_names=["", "", "CD3", "CD56"],
                          metadata_dict={"FIL": EXAMPLE_NAME,
                                         "CIKSIM": "synthetic example, not patient data"})
    return path


__all__ = ["DEFAULT_GATE", "POPULATIONS", "PhenotypeRun", "example_fcs", "phenotype"]
