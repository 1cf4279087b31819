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
import multiprocessing as mp
import os
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ciksim.schemas import formats

REFUSE, ANY = "refuse", "any"

PROTOCOL = """name = "p"
harvest_day = 14
[parameters]
seed_density = {seed_density}
[[events]]
day = 0
action = "set"
values = {{ IFNg = "1000 IU/mL" }}
[[events]]
every = {every}
from = 3
until = 12
action = "feed"
volume_fraction = 0.5
top_up = {{ IL2 = {il2} }}
"""

SCENARIO = """name = "s"
relapse_threshold = 0.05
[parameters]
start_burden = 6e-4
weight = {weight}
{extra}
[variability]
T_double = {variability}
[[events]]
days = [14, 49, 84]
action = "dose"
dose = "chemo"
amount = 1
"""

TRIAL = """name = "t"
seed = 1
patients_per_arm = 12
follow_up_years = 1
relapse = {relapse}
[population]
scenario = "aml-cr1"
[product]
culture_protocol = "cik-gmp"
donors = 3
[[arms]]
name = "chemotherapy"
[[arms]]
name = {arm}
cik = {cik}
"""
CIK = '{{ dose_per_kg = 5e7, infusions = {infusions}, interval_days = 21, first_day = 30, ' \
      'il2_support = {il2_support} }}'

#: the registered target example, with its name left to fill in (``TARGET.format(name=...)``)
TARGET = formats()["target"].example.replace('name = "my-blasts"', "name = {name}", 1)

LYSIS_HEAD, *LYSIS_ROWS = formats()["lysis"].example.splitlines()

TRIAL_FAST = ["--draws", "0", "--workers", "1", "--n-per-arm", "12"]


@dataclass
class Case:
    category: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    expect: str = REFUSE
    out: str | None = None         # the --out folder to check after an error exit
    preexisting_out: bool = False  # --out names an existing file (it must stay untouched)


def protocol(seed_density: str = '"2e6 cells/mL"', every: str = "3",
             il2: str = '"300 IU/mL"') -> bytes:
    return PROTOCOL.format(seed_density=seed_density, every=every, il2=il2).encode()


def scenario(weight: str = '"80 kg"', variability: str = "0.3", extra: str = "") -> bytes:
    return SCENARIO.format(weight=weight, variability=variability, extra=extra).encode()


def trial(relapse: str = '"haematologic"', arm: str = '"chemotherapy + CIK"',
          infusions: str = "3", il2_support: str = "false", cik: str | None = None) -> bytes:
    cik = cik or CIK.format(infusions=infusions, il2_support=il2_support)
    return TRIAL.format(relapse=relapse, arm=arm, cik=cik).encode()


def consumers(name: str) -> list[Case]:
    """Every command that reads a file ``name`` of each kind."""
    return [
        Case("", ["lysis", name]),
        Case("", ["fit", "culture", name, "--steps", "5"]),
        Case("", ["culture", "--protocol", name, "--donors", "2"]),
        Case("", ["patient", "--scenario", name, "--replicates", "5", "--years", "0.5"]),
        Case("", ["trial", name, *TRIAL_FAST]),
        Case("", ["killing", "--target", name, "--donors", "2"]),
        Case("", ["rerun", name, "--out", "o"]),
    ]


def generate(n: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    gens = [binary, containers, out_file, mathtext, options, nesting, towers, huge, silent,
            lysis_plates]
    cases: list[Case] = []
    while len(cases) < n:
        for gen in gens:
            cases.append(gen(rng))
    return cases[:n]


def pick(rng: np.random.Generator, seq: list) -> object:
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
    ext = pick(rng, [".csv", ".toml"])
    case = pick(rng, consumers("x" + ext))
    return Case("binary file", case.argv, {"x" + ext: data}, out="o" if "o" in case.argv else None)


def containers(rng: np.random.Generator) -> Case:
    options = [
        ("p.toml", protocol().replace(b"harvest_day = 14", b"harvest_day = 14\nevents = 5")
         .split(b"[[events]]")[0], ["culture", "--protocol", "p.toml", "--donors", "2"]),
        ("p.toml", b'name = "p"\nharvest_day = 14\nparameters = 5\n',
         ["culture", "--protocol", "p.toml", "--donors", "2"]),
        ("t.toml", trial(cik="5"), ["trial", "t.toml", *TRIAL_FAST]),
        ("t.toml", trial(cik="[1]"), ["trial", "t.toml", *TRIAL_FAST]),
        ("t.toml", trial(relapse="[1]"), ["trial", "t.toml", *TRIAL_FAST]),
        ("t.toml", trial(relapse="{ a = 1 }"), ["trial", "t.toml", *TRIAL_FAST]),
        ("t.toml", trial().replace(b"[population]\n", b"[population]\narms = 5\n")
         .replace(b'scenario = "aml-cr1"', b'scenario = [1]'), ["trial", "t.toml", *TRIAL_FAST]),
        ("t.toml", b'name = "t"\narms = 5\n', ["trial", "t.toml", *TRIAL_FAST]),
        ("s.toml", scenario().split(b"[[events]]")[0] + b"events = 5\n",
         ["patient", "--scenario", "s.toml", "--replicates", "5", "--years", "0.5"]),
        ("s.toml", scenario(variability="[1]"),
         ["patient", "--scenario", "s.toml", "--replicates", "5", "--years", "0.5"]),
        ("s.toml", b'name = "s"\nparameters = "x"\n',
         ["patient", "--scenario", "s.toml", "--replicates", "5", "--years", "0.5"]),
        ("g.toml", TARGET.format(name='"g"').replace('["nkg2d", "other"]', "5").encode(),
         ["killing", "--target", "g.toml", "--donors", "2"]),
    ]
    name, data, argv = pick(rng, options)
    return Case("wrong TOML container", argv, {name: data})


def out_file(rng: np.random.Generator) -> Case:
    argv = pick(rng, [["culture", "--donors", "2", "--days", "3"],
                      ["killing", "--donors", "2"],
                      ["patient", "--replicates", "5", "--years", "0.5"],
                      ["lysis", "l.csv"],
                      ["trial", "examples/aml-adjuvant-cik.toml", *TRIAL_FAST]])
    files = {"l.csv": "\n".join([LYSIS_HEAD, *LYSIS_ROWS]).encode()}
    return Case("--out names a file", [*argv, "--out", "o"], files, REFUSE, "o", True)


MATH = ["$x^$", "$\\frac{1}{$", "$$", "a $\\alpha$ b", "$\\undefinedcommand$", "$_^$", "$"]


def mathtext(rng: np.random.Generator) -> Case:
    name = '"' + str(pick(rng, MATH)).replace("\\", "\\\\") + '"'
    if rng.integers(2):
        return Case("$...$ in names", ["trial", "t.toml", *TRIAL_FAST, "--out", "o"],
                    {"t.toml": trial(arm=name)}, ANY, "o")
    return Case("$...$ in names", ["killing", "--target", "g.toml", "--donors", "2",
                                   "--out", "o"],
                {"g.toml": TARGET.format(name=name).encode()}, ANY, "o")


def options(rng: np.random.Generator) -> Case:
    spec = "examples/aml-adjuvant-cik.toml"
    argv, expect = pick(rng, [
        (["trial", spec, "--draws", "0", "--n-per-arm", "12", "--workers",
          str(pick(rng, [-1, 0, -100]))], REFUSE),
        (["trial", spec, "--draws", "0", "--n-per-arm", "12", "--workers", "1",
          "--scheduler", str(pick(rng, ["garbage", "tcp://", "tcp://host:notaport", "::"]))],
         REFUSE),
        (["trial", spec, "--draws", "0", "--n-per-arm", "12", "--workers", "1",
          "--chunk-size", str(pick(rng, [0, -5]))], REFUSE),
        (["fit", "culture", "c.csv", "--walkers", str(pick(rng, [300, 1, 0, -3])),
          "--steps", "2"], ANY),
    ])
    counts = b"donor,day,quantity,value,sd\nA,0,total_cells,1e8,\nA,7,total_cells,9e8,\n" \
             b"A,14,total_cells,6e9,\n"
    return Case("CLI options", [*argv, "--out", "o"], {"c.csv": counts}, expect, "o")


def nesting(rng: np.random.Generator) -> Case:
    depth = int(rng.integers(100, 60_000))
    data = pick(rng, [b"x = " + b"[" * depth + b"]" * depth, b"a = {" * depth,
                      b"x = " + b"[" * depth, b'name = "t"\n' + b"[a" + b".a" * depth + b"]\n"])
    case = pick(rng, consumers("d.toml"))
    return Case("deep nesting", case.argv, {"d.toml": data}, out="o" if "o" in case.argv else None)


TOWERS = ['"3 ** 9 ** 9 IU/mL"', '"2 ^ 2 ^ 2 ^ 2 ^ 2 cells/mL"', '"9**9**9**9 cells/mL"',
          '"1e99999 IU/mL"', '"(((((((((((((((((((((1)))))))))))))))))))) IU/mL"',
          '"3 IU/mL ** 9 ** 9"', '"10 ** 400 kg"']


def towers(rng: np.random.Generator) -> Case:
    tower = str(pick(rng, TOWERS))
    where = int(rng.integers(3))
    if where == 0:
        return Case("unit exponent towers", ["culture", "--protocol", "p.toml", "--donors", "2"],
                    {"p.toml": protocol(seed_density=tower)})
    if where == 1:
        return Case("unit exponent towers", ["culture", "--protocol", "p.toml", "--donors", "2"],
                    {"p.toml": protocol(il2=tower)})
    return Case("unit exponent towers", ["patient", "--scenario", "s.toml", "--replicates", "5",
                                         "--years", "0.5"], {"s.toml": scenario(weight=tower)})


def huge(rng: np.random.Generator) -> Case:
    big = str(pick(rng, ["1e6", "1e300", "1e12", "inf", "nan"]))
    options_ = [
        Case("", ["culture", "--days", big, "--donors", "2"]),
        Case("", ["killing", "--hours", big, "--donors", "2"]),
        Case("", ["patient", "--years", big, "--replicates", "5"]),
        Case("", ["patient", "--replicates", str(pick(rng, [10**12, 0, -1])), "--years", "0.5"]),
        Case("", ["culture", "--donors", str(pick(rng, [10**9, 0, -2])), "--days", "3"]),
        Case("", ["culture", "--protocol", "p.toml", "--donors", "2"],
             {"p.toml": protocol(every=str(pick(rng, ["1e-4", "1e-9", "0", "-3", "nan"])))}),
        Case("", ["culture", "--protocol", "p.toml", "--donors", "2"],
             {"p.toml": protocol(seed_density=str(pick(rng, ['"1e300 cells/mL"', "1e300",
                                                              '"1e30 cells/mL"'])))}),
        Case("", ["trial", "examples/aml-adjuvant-cik.toml", "--draws", "0", "--workers", "1",
                  "--n-per-arm", str(pick(rng, [10**12, 0, -1]))]),
    ]
    case = pick(rng, options_)
    return Case("huge values", case.argv, case.files)


def silent(rng: np.random.Generator) -> Case:
    pat = ["patient", "--scenario", "s.toml", "--replicates", "5", "--years", "0.5"]
    tri = ["trial", "t.toml", *TRIAL_FAST]
    argv, files = pick(rng, [
        (pat, {"s.toml": scenario(weight="-70")}),
        (pat, {"s.toml": scenario(weight='"-70 kg"')}),
        (pat, {"s.toml": scenario(extra="T_double = -5")}),
        (pat, {"s.toml": scenario(extra="logkill_L = -1")}),
        (pat, {"s.toml": scenario(variability="nan")}),
        (pat, {"s.toml": scenario(variability="inf")}),
        (pat, {"s.toml": scenario(variability="-0.3")}),
        (tri, {"t.toml": trial(il2_support='"no"')}),
        (tri, {"t.toml": trial(il2_support="0")}),
        (tri, {"t.toml": trial(infusions="1.5")}),
        (tri, {"t.toml": trial(infusions='"3"')}),
        (tri, {"t.toml": trial(relapse="true")}),
        (tri, {"t.toml": trial(relapse="1.5")}),  # a number is a threshold in (0, 1]
        (["trial", "examples/aml-adjuvant-cik.toml", "--draws", "0", "--n-per-arm", "12",
          "--workers", "1", "--chunk-size", "0"], {}),
    ])
    return Case("silently accepted values", list(argv), files)


def lysis_plates(rng: np.random.Generator) -> Case:
    rows = list(LYSIS_ROWS)
    kind = int(rng.integers(4))
    if kind == 0:  # experimental release far above maximum: > 100 % lysis
        value = int(rng.integers(2300, 10_000))
        rows[4] = f"cik,k562,10,experimental,1,{value}"
    elif kind == 1:  # a duplicated row
        i = int(rng.integers(len(rows)))
        rows.insert(i, rows[i])
    elif kind == 2:  # an extra field
        i = int(rng.integers(len(rows)))
        rows[i] = rows[i] + "," + str(pick(rng, ["1", "x", ""]))
    else:  # an extra column in the header only for some rows -> mismatched field counts
        rows = [r + ",9" for r in rows]
    return Case("lysis plates", ["lysis", "l.csv"],
                {"l.csv": "\n".join([LYSIS_HEAD, *rows]).encode()})


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


def warm_up(repo: Path) -> None:
    """Import and compile once in the parent: forked children inherit it, so each case pays
    only its own work."""
    from typer.testing import CliRunner

    from ciksim.cli import app
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "l.csv").write_text("\n".join([LYSIS_HEAD, *LYSIS_ROWS]) + "\n")
        for argv in (["culture", "--donors", "2", "--days", "3", "--json"],
                     ["killing", "--donors", "2", "--json"],
                     ["patient", "--replicates", "2", "--years", "0.2", "--json"],
                     ["lysis", str(Path(tmp) / "l.csv"), "--json"],
                     ["trial", str(repo / "examples" / "aml-adjuvant-cik.toml"), *TRIAL_FAST,
                      "--json"]):
            runner.invoke(app, argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--limit", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    repo = Path(__file__).resolve().parents[1]
    warm_up(repo)
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
                (root / "examples").mkdir(parents=True)
                for name in ("aml-adjuvant-cik.toml",):
                    (root / "examples" / name).write_bytes(
                        (repo / "examples" / name).read_bytes())
                for name, data in case.files.items():
                    (root / name).write_bytes(data)
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
