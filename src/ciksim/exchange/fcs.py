"""Flow cytometry in: the ``phenotype`` job reads FCS files (flowio), gates CD3/CD56 and
writes each sample's CD3+CD56+, CD3+CD56- and CD3-CD56+ shares.

Gate strategy, by default (thresholds in the file's channel values, shown in the output):

1. lymphocytes: ``fsc_min <= FSC-A <= fsc_max`` and ``SSC-A <= ssc_max`` (debris and
   granulocytes/monocytes out; channels found by name ``FSC-A``/``FSC-H``/``FSC``...);
2. among lymphocytes, quadrants on CD3 and CD56 at ``cd3_min`` and ``cd56_min``: CD3+CD56+
   (CIK), CD3+CD56- (T), CD3-CD56+ (NK); shares are % of lymphocytes.

Or a gate file the user gives (read with FlowKit): a Gating-ML 2.0 file, or a FlowJo 10
workspace (``.wsp``: its gates for each sample, with the workspace's compensation and
transforms; each FCS file is matched to the workspace sample of the same file name). It
must define gates named ``CD3pos_CD56pos``, ``CD3pos_CD56neg`` and ``CD3neg_CD56pos``
(Gating-ML ids cannot hold ``+``; ``pos``/``neg``, ``+``/``-``, case, spaces, commas,
``_`` and a FlowJo quadrant prefix ``Q2:`` are all read alike, so FlowJo's ``CD3+CD56+``
matches), e.g. the quadrants of a quadrant gate; each share is the gate's count as % of its
parent gate.
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
    strategy: _GatingMLGates | _WorkspaceGates | None = None
    if gate_file is not None:
        gpath = Path(gate_file)
        strategy = (_WorkspaceGates(gpath, [Path(f) for f in files])
                    if gpath.suffix.lower() == ".wsp" else _GatingMLGates(gpath))
    rows, used = [], {}
    for f in files:
        path = Path(f)
        fd = _read(path)
        channels = _channel_list(fd)
        i3 = _find(channels, "CD3", cd3_channel, path)
        i56 = _find(channels, "CD56", cd56_channel, path)
        used[path.name] = {"CD3": channels[i3][0], "CD56": channels[i56][0]}
        if strategy is not None:
            counts, parent = strategy.counts(path, int(fd.event_count))
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
    shown = ({"strategy": strategy.kind, "file": str(gate_file), "populations":
              list(POPULATIONS.values())} if strategy is not None else
             {"strategy": "default: lymphocytes by FSC/SSC, then CD3/CD56 quadrants",
              "thresholds": gate})
    return PhenotypeRun(table, shown, None if day is None else float(day), donor, used)


def _flowkit(what: str):
    try:
        import flowkit as fk
    except ImportError as exc:
        raise DataError(f"gate_file: reading {what} needs FlowKit: pip install flowkit "
                        "(or pip install 'ciksim[interop]')") from exc
    return fk


def _key(name: str) -> str:
    """``CD3pos_CD56neg``, ``cd3+ cd56-``, ``CD3+CD56−`` and FlowJo's ``Q3: CD3+ , CD56-``
    all read ``cd3+cd56-``."""
    key = re.sub(r"^\s*q\d+\s*:", "", name.lower())
    key = key.replace("−", "-").replace("pos", "+").replace("neg", "-")
    return "".join(c for c in key if c not in " _.,")


def _match(gate_ids: Sequence[tuple[str, tuple[str, ...]]], path: Path, where: str,
           fix: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The population gates among ``gate_ids`` ((name, path) pairs), by ``_key``."""
    found: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for gid in gate_ids:
        found.setdefault(_key(gid[0]), []).append(gid)
    names = ", ".join(g[0] for g in gate_ids) or "none"
    missing = [p for p in POPULATIONS.values() if _key(p) not in found]
    if missing:
        raise DataError(f"gate_file: {path}{where} does not match: it has no gate named "
                        f"{', '.join(missing)} (gates found: {names}); {fix}")
    twice = [p for p in POPULATIONS.values() if len(found[_key(p)]) > 1]
    if twice:
        paths = "; ".join(" > ".join((*g[1], g[0])) for p in twice for g in found[_key(p)])
        raise DataError(f"gate_file: {path}{where}: more than one gate named "
                        f"{', '.join(twice)} ({paths}); keep one of each or rename the others")
    return {p: found[_key(p)][0] for p in POPULATIONS.values()}


class _GatingMLGates:
    """A Gating-ML 2.0 file: population and parent-gate event counts of each FCS file."""

    kind = "Gating-ML"

    def __init__(self, path: Path) -> None:
        fk = _flowkit("Gating-ML")
        if not path.is_file():
            raise DataError(f"gate_file: {path} not found")
        try:
            self.strategy = fk.parse_gating_xml(str(path))
        except Exception as exc:
            raise DataError(f"gate_file: {path} is not a Gating-ML 2.0 file ({exc}); export "
                            "the gates as Gating-ML 2.0 (FlowJo, FlowKit, Cytobank) or give "
                            "a FlowJo workspace (.wsp)") from exc
        self.names = _match(self.strategy.get_gate_ids(), path, "", _RENAME)

    def counts(self, path: Path, events: int) -> tuple[dict[str, int], dict[str, int]]:
        fk = _flowkit("Gating-ML")
        try:
            results = self.strategy.gate_sample(fk.Sample(str(path)))
        except Exception as exc:
            raise DataError(f"{path}: the gate file does not match this sample ({exc}); its "
                            "gates must use the sample's channel names") from exc
        counts, parent = {}, {}
        for pop, (name, gate_path) in self.names.items():
            counts[pop] = int(results.get_gate_count(name, gate_path))
            up = self.strategy.get_parent_gate_id(name, gate_path)
            parent[pop] = (int(results.get_gate_count(up[0], up[1])) if up and up[0] != "root"
                           else events)
        return counts, parent


class _WorkspaceGates:
    """A FlowJo 10 workspace: each FCS file's gates (custom gates included), compensation
    and transforms, as FlowKit's ``Workspace`` applies them."""

    kind = "FlowJo workspace"

    def __init__(self, path: Path, files: Sequence[Path]) -> None:
        import warnings

        fk = _flowkit("a FlowJo workspace")
        if not path.is_file():
            raise DataError(f"gate_file: {path} not found")
        self.path = path
        readable = [str(f) for f in files if f.is_file()]
        try:
            with warnings.catch_warnings():  # samples of the workspace not given here
                warnings.simplefilter("ignore")
                self.ws = fk.Workspace(str(path), fcs_samples=readable, filename_as_id=True,
                                       load_missing_file_data=True)
        except Exception as exc:
            raise DataError(f"gate_file: {path} is not a readable FlowJo workspace "
                            f"({type(exc).__name__}: {exc}); save it again from FlowJo 10 "
                            "(File > Save As, .wsp) or export the gates as Gating-ML 2.0"
                            ) from exc

    def counts(self, path: Path, events: int) -> tuple[dict[str, int], dict[str, int]]:
        loaded = self.ws.get_sample_ids()
        if path.name not in loaded:
            known = ", ".join(self.ws.get_sample_ids(loaded_only=False)) or "none"
            raise DataError(f"{path}: no sample of that file name in the workspace "
                            f"{self.path} (its samples: {known}); give the FCS files the "
                            "workspace was made from, under their original names")
        where = f" (sample {path.name})"
        names = _match(self.ws.get_gate_ids(path.name), self.path, where, _RENAME)
        try:
            self.ws.analyze_samples(sample_id=path.name, use_mp=False)
            results = self.ws.get_gating_results(path.name)
        except Exception as exc:
            raise DataError(f"{path}: the workspace {self.path} does not gate this sample "
                            f"({type(exc).__name__}: {exc}); its gates must use the "
                            "sample's channel names") from exc
        counts, parent = {}, {}
        for pop, (name, gate_path) in names.items():
            counts[pop] = int(results.get_gate_count(name, gate_path))
            up = gate_path[-1]
            parent[pop] = (events if up == "root" else
                           int(results.get_gate_count(up, tuple(gate_path[:-1]))))
        return counts, parent


_RENAME = ("name the three population gates CD3+CD56+, CD3+CD56- and CD3-CD56+ (in Gating-ML "
           "CD3pos_CD56pos, CD3pos_CD56neg and CD3neg_CD56pos, which cannot hold '+')")


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
