"""Hostile-user benchmark (issue 17): ~2,000 derandomised malformed invocations of the real
CLI, in the categories of issue 17, each in a fresh temporary folder in a forked process
with a time limit. Counts per category: tracebacks (exit code not 0/2, or "Traceback" in
the output), hangs (time limit hit), half-written outputs (files left in --out after an
error exit) and silent acceptances (exit 0 on an input that must be refused), with the
first failing example of each.

    python benchmarks/hostile.py [--cases 2000] [--limit 20] [--jobs 2] [--seed 17]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import tempfile
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from ciksim.schemas import formats

REFUSE, ANY = "refuse", "any"

Place = tuple[str | int, ...]  # a place in a TOML document: keys and array indices
#: Places in the registered examples the cases change.
SEED_DENSITY, EVERY, IL2 = ("parameters", "seed_density"), ("events", 1, "every"), \
    ("events", 1, "top_up", "IL2")  # protocol (events[1]: the feed)
WEIGHT, T_DOUBLE_SD = ("parameters", "weight"), ("variability", "T_double")  # scenario
RELAPSE, ARM_NAME, CIK = ("relapse",), ("arms", 1, "name"), ("arms", 1, "cik")  # trial
#: The trial example made small: 1 year of follow-up, a product of 3 donors.
SMALL_TRIAL = {("follow_up_years",): "1", ("product", "donors"): "3"}


def value(text: str) -> Any:
    """A TOML value written as text: ``'"80 kg"'``, ``'[1]'``, ``'nan'``."""
    return tomllib.loads(f"v = {text}")["v"]


def example(fmt: str, changes: dict[Place, str] | None = None) -> bytes:
    """The registered example of format ``fmt``, each place in ``changes`` set to the TOML
    value written there (a small trial for ``fmt`` trial)."""
    data = tomllib.loads(formats()[fmt].example)
    for path, text in {**(SMALL_TRIAL if fmt == "trial" else {}), **(changes or {})}.items():
        *where, key = path
        node = data
        for k in where:
            node = node[k]
        node[key] = value(text)
    return tomli_w.dumps(data).encode()


LYSIS_HEAD, *LYSIS_ROWS = formats()["lysis"].example.splitlines()
#: Files every case's folder starts with (a case's own files replace them): a valid trial
#: spec, lysis plate and counts table, each the registered example.
SPEC = "t.toml"
BASE_FILES = {SPEC: example("trial"), "l.csv": formats()["lysis"].example.encode(),
              "c.csv": formats()["counts"].example.encode()}


def command(words: str, **options: object) -> list[str]:
    """The arguments ``words`` (space-separated) then ``--option value`` for each option
    (``n_per_arm`` is ``--n-per-arm``; None leaves it out)."""
    return words.split() + [a for k, v in options.items() if v is not None
                            for a in (f"--{k.replace('_', '-')}", str(v))]


# Each verb with small sizes (a case's options replace them).
def culture(**o: object) -> list[str]:
    return command("culture", **{"donors": 2, **o})


def killing(**o: object) -> list[str]:
    return command("killing", **{"donors": 2, **o})


def patient(**o: object) -> list[str]:
    return command("patient", **{"replicates": 5, "years": 0.5, **o})


def trial(spec: str = SPEC, **o: object) -> list[str]:
    return command(f"trial {spec}", **{"draws": 0, "workers": 1, "n_per_arm": 12, **o})


def fit(path: str, **o: object) -> list[str]:
    return command(f"fit culture {path}", **{"steps": 5, **o})


@dataclass
class Case:
    category: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    expect: str = REFUSE
    out: str | None = None         # the --out folder to check after an error exit
    preexisting_out: bool = False  # --out names an existing file (it must stay untouched)


def consumers(name: str) -> list[list[str]]:
    """Every command that reads a file ``name`` of each kind."""
    return [["lysis", name], fit(name), culture(protocol=name), patient(scenario=name),
            trial(name), killing(target=name), ["rerun", name, "--out", "o"]]


def generate(n: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    gens = [binary, containers, out_file, mathtext, options, nesting, towers, huge, silent,
            lysis_plates]
    cases: list[Case] = []
    while len(cases) < n:
        for gen in gens:
            cases.append(gen(rng))
    return cases[:n]


def pick(rng: np.random.Generator, seq: list) -> Any:
    return seq[int(rng.integers(len(seq)))]


def binary(rng: np.random.Generator) -> Case:
    size = int(rng.integers(1, 2000))
    kind = int(rng.integers(4))
    if kind == 0:
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    elif kind == 1:
        data = b"\xef\xbb\xbf" + rng.integers(128, 256, size, dtype=np.uint8).tobytes()
    elif kind == 2:
        data = ("name = \"caf\xe9\"\n" + LYSIS_HEAD + "\n").encode("latin-1")
    else:
        data = "\n".join([LYSIS_HEAD, *LYSIS_ROWS]).encode("utf-16")
    name = "x" + pick(rng, [".csv", ".toml"])
    argv = pick(rng, consumers(name))
    return Case("binary file", argv, {name: data}, out="o" if "o" in argv else None)


def containers(rng: np.random.Generator) -> Case:
    p, s, t = culture(protocol="f.toml"), patient(scenario="f.toml"), trial("f.toml")
    argv, fmt, changes = pick(rng, [
        (p, "protocol", {("events",): "5"}),
        (p, "protocol", {("parameters",): "5"}),
        (t, "trial", {CIK: "5"}),
        (t, "trial", {CIK: "[1]"}),
        (t, "trial", {RELAPSE: "[1]"}),
        (t, "trial", {RELAPSE: "{ a = 1 }"}),
        (t, "trial", {("population", "arms"): "5", ("population", "scenario"): "[1]"}),
        (t, "trial", {("arms",): "5"}),
        (s, "scenario", {("events",): "5"}),
        (s, "scenario", {T_DOUBLE_SD: "[1]"}),
        (s, "scenario", {("parameters",): '"x"'}),
        (killing(target="f.toml"), "target", {("recognition",): "5"}),
    ])
    return Case("wrong TOML container", argv, {"f.toml": example(fmt, changes)})


def out_file(rng: np.random.Generator) -> Case:
    argv = pick(rng, [culture(days=3), killing(), patient(), ["lysis", "l.csv"], trial()])
    return Case("--out names a file", [*argv, "--out", "o"], {}, REFUSE, "o", True)


MATH = ["$x^$", "$\\frac{1}{$", "$$", "a $\\alpha$ b", "$\\undefinedcommand$", "$_^$", "$"]


def mathtext(rng: np.random.Generator) -> Case:
    name = '"' + str(pick(rng, MATH)).replace("\\", "\\\\") + '"'
    if rng.integers(2):
        return Case("$...$ in names", [*trial("n.toml"), "--out", "o"],
                    {"n.toml": example("trial", {ARM_NAME: name})}, ANY, "o")
    return Case("$...$ in names", [*killing(target="g.toml"), "--out", "o"],
                {"g.toml": example("target", {("name",): name})}, ANY, "o")


def options(rng: np.random.Generator) -> Case:
    argv, expect = pick(rng, [
        (trial(workers=pick(rng, [-1, 0, -100])), REFUSE),
        (trial(scheduler=pick(rng, ["garbage", "tcp://", "tcp://host:notaport", "::"])),
         REFUSE),
        (trial(chunk_size=pick(rng, [0, -5])), REFUSE),
        (fit("c.csv", walkers=pick(rng, [300, 1, 0, -3]), steps=2), ANY),
    ])
    return Case("CLI options", [*argv, "--out", "o"], {}, expect, "o")


def nesting(rng: np.random.Generator) -> Case:
    depth = int(rng.integers(100, 60_000))
    data = pick(rng, [b"x = " + b"[" * depth + b"]" * depth, b"a = {" * depth,
                      b"x = " + b"[" * depth, b'name = "t"\n' + b"[a" + b".a" * depth + b"]\n"])
    argv = pick(rng, consumers("d.toml"))
    return Case("deep nesting", argv, {"d.toml": data}, out="o" if "o" in argv else None)


TOWERS = ['"3 ** 9 ** 9 IU/mL"', '"2 ^ 2 ^ 2 ^ 2 ^ 2 cells/mL"', '"9**9**9**9 cells/mL"',
          '"1e99999 IU/mL"', '"(((((((((((((((((((((1)))))))))))))))))))) IU/mL"',
          '"3 IU/mL ** 9 ** 9"', '"10 ** 400 kg"']


def towers(rng: np.random.Generator) -> Case:
    tower = pick(rng, TOWERS)
    fmt, place = pick(rng, [("protocol", SEED_DENSITY), ("protocol", IL2),
                            ("scenario", WEIGHT)])
    argv = culture(protocol="f.toml") if fmt == "protocol" else patient(scenario="f.toml")
    return Case("unit exponent towers", argv, {"f.toml": example(fmt, {place: tower})})


def huge(rng: np.random.Generator) -> Case:
    big = pick(rng, ["1e6", "1e300", "1e12", "inf", "nan"])
    argv, files = pick(rng, [
        (culture(days=big), {}),
        (killing(hours=big), {}),
        (patient(years=big), {}),
        (patient(replicates=pick(rng, [10**12, 0, -1])), {}),
        (culture(donors=pick(rng, [10**9, 0, -2]), days=3), {}),
        (culture(protocol="f.toml"),
         {"f.toml": example("protocol", {EVERY: pick(rng, ["1e-4", "1e-9", "0", "-3",
                                                          "nan"])})}),
        (culture(protocol="f.toml"),
         {"f.toml": example("protocol", {SEED_DENSITY: pick(rng, ['"1e300 cells/mL"',
                                                                  "1e300",
                                                                  '"1e30 cells/mL"'])})}),
        (trial(n_per_arm=pick(rng, [10**12, 0, -1])), {}),
    ])
    return Case("huge values", argv, files)


def silent(rng: np.random.Generator) -> Case:
    place, text = pick(rng, [
        (WEIGHT, "-70"), (WEIGHT, '"-70 kg"'), (("parameters", "T_double"), "-5"),
        (("parameters", "logkill_L"), "-1"), (T_DOUBLE_SD, "nan"), (T_DOUBLE_SD, "inf"),
        (T_DOUBLE_SD, "-0.3"),
        ((*CIK, "il2_support"), '"no"'), ((*CIK, "il2_support"), "0"),
        ((*CIK, "infusions"), "1.5"), ((*CIK, "infusions"), '"3"'),
        (RELAPSE, "true"), (RELAPSE, "1.5"),  # a number is a threshold in (0, 1]
        (None, None),
    ])
    if place is None:
        return Case("silently accepted values", trial(chunk_size=0))
    if place[0] in ("relapse", "arms"):
        return Case("silently accepted values", trial("f.toml"),
                    {"f.toml": example("trial", {place: text})})
    return Case("silently accepted values", patient(scenario="f.toml"),
                {"f.toml": example("scenario", {place: text})})


def lysis_plates(rng: np.random.Generator) -> Case:
    rows = list(LYSIS_ROWS)
    kind = int(rng.integers(4))
    if kind == 0:  # experimental release far above maximum: > 100 % lysis
        value_ = int(rng.integers(2300, 10_000))
        rows[4] = f"cik,k562,10,experimental,1,{value_}"
    elif kind == 1:  # a duplicated row
        i = int(rng.integers(len(rows)))
        rows.insert(i, rows[i])
    elif kind == 2:  # an extra field
        i = int(rng.integers(len(rows)))
        rows[i] = rows[i] + "," + str(pick(rng, ["1", "x", ""]))
    else:  # an extra column in the header only for some rows -> mismatched field counts
        rows = [r + ",9" for r in rows]
    return Case("lysis plates", ["lysis", "p.csv"],
                {"p.csv": "\n".join([LYSIS_HEAD, *rows]).encode()})


# ---- running -------------------------------------------------------------------------------

def run_case(case: Case, root: Path, conn) -> None:  # runs in a forked child
    from typer.testing import CliRunner

    from ciksim.cli import app
    os.chdir(root)
    result = CliRunner().invoke(app, case.argv)
    text = result.output
    exc = result.exception
    conn.send((result.exit_code, text[-2000:], None if exc is None else repr(exc)[:500]))
    conn.close()


def judge(case: Case, root: Path, outcome) -> list[str]:
    if outcome is None:
        return ["hang"]
    code, text, exc = outcome
    faults = []
    if code not in (0, 2) or "Traceback" in text or (
            exc is not None and not exc.startswith("SystemExit")):
        faults.append("traceback")
    if code != 0 and case.out is not None:
        out = root / case.out
        if case.preexisting_out:
            if not out.is_file() or out.read_bytes() != b"keep":
                faults.append("half-written")
        elif out.exists():
            faults.append("half-written")
    if code == 0 and case.expect == REFUSE:
        faults.append("silent acceptance")
    return faults


def populate(root: Path, files: dict[str, bytes]) -> None:
    """A case's folder: the base files, then the case's own."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in {**BASE_FILES, **files}.items():
        (root / name).write_bytes(data)


def warm_up() -> None:
    """Import and compile once in the parent: forked children inherit it, so each case pays
    only its own work."""
    from typer.testing import CliRunner

    from ciksim.cli import app
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        populate(Path(tmp), {})
        for argv in (culture(days=3), killing(), patient(replicates=2, years=0.2),
                     ["lysis", "l.csv"], trial()):
            runner.invoke(app, [*argv, "--json"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--limit", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    warm_up()
    cases = generate(args.cases, args.seed)
    ctx = mp.get_context("fork")
    start = time.perf_counter()
    totals: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    faults: dict[str, Counter[str]] = defaultdict(Counter)
    first: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pending = list(enumerate(cases))
        running: list = []
        while pending or running:
            while pending and len(running) < args.jobs:
                i, case = pending.pop(0)
                root = Path(tmp) / str(i)
                populate(root, case.files)
                if case.preexisting_out:
                    (root / "o").write_bytes(b"keep")
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=run_case, args=(case, root, send))
                proc.start()
                send.close()
                running.append((case, root, proc, recv, time.perf_counter()))
            time.sleep(0.01)
            still = []
            for case, root, proc, recv, t0 in running:
                outcome, done = None, False
                if recv.poll():
                    try:
                        outcome, done = recv.recv(), True
                    except EOFError:
                        outcome, done = (-1, "child died", "EOFError"), True
                elif not proc.is_alive():
                    outcome, done = (proc.exitcode, "child died", "died"), True
                elif time.perf_counter() - t0 > args.limit:
                    proc.kill()
                    done = True
                if not done:
                    still.append((case, root, proc, recv, t0))
                    continue
                proc.join(5)
                totals[case.category] += 1
                seconds[case.category] += time.perf_counter() - t0
                for fault in judge(case, root, outcome):
                    faults[case.category][fault] += 1
                    first.setdefault((case.category, fault),
                                     f"ciksim {' '.join(case.argv)[:160]} "
                                     f"files={ {k: v[:80] for k, v in case.files.items()} } "
                                     f"-> {str(outcome)[:300]}")
            running = still
    elapsed = time.perf_counter() - start
    kinds = ["traceback", "hang", "half-written", "silent acceptance"]
    print(f"{sum(totals.values())} cases, seed {args.seed}, limit {args.limit:g} s/case, "
          f"{args.jobs} jobs, {elapsed:.0f} s")
    print(f"{'category':28s} {'cases':>6s} " + " ".join(f"{k:>17s}" for k in kinds) + "  mean s")
    for cat in totals:
        print(f"{cat:28s} {totals[cat]:6d} " + " ".join(f"{faults[cat][k]:17d}" for k in kinds)
              + f"  {seconds[cat] / totals[cat]:6.2f}")
    print(f"{'total':28s} {sum(totals.values()):6d} "
          + " ".join(f"{sum(f[k] for f in faults.values()):17d}" for k in kinds))
    for (cat, fault), example in first.items():
        print(f"\nfirst {fault} in {cat}: {example}")


if __name__ == "__main__":
    main()
