"""PEtab export: per donor, sd carried, ciksim's scales and bounds; pyPESTO with a
roadrunner objective finds ciksim's per-donor fit."""

import numpy as np
import pandas as pd
import pytest

from ciksim.errors import DataError
from ciksim.inference.culture import CultureData, donor_log_likelihood, simulated_counts
from ciksim.inference.petab_export import lint, write_petab
from ciksim.models.culture import culture_model
from ciksim.protocol import Protocol

FREE = ["phi_max", "k_conv"]
DONORS = {"A": {"phi_max": 0.6, "k_conv": 0.05}, "B": {"phi_max": 0.4, "k_conv": 0.08}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    frames = [simulated_counts(truth, days=[0, 3, 7, 10, 14], seed=k, donor=name)
              for k, (name, truth) in enumerate(DONORS.items())]
    df = pd.concat(frames, ignore_index=True)
    df["sd"] = np.where(df["quantity"] == "total_cells", 0.1 * df["value"], 2.0)
    df.loc[df["day"] == 14, "sd"] *= 1.5  # measurement-specific noise levels
    path = tmp_path_factory.mktemp("counts") / "counts.csv"
    df.to_csv(path, index=False)
    return CultureData.read_csv(path)


def test_per_donor_parameters_sd_and_scales(data, tmp_path):
    yaml = write_petab(data, tmp_path, protocol=Protocol.load("cik-standard"), free=FREE)
    lint(yaml)
    pars = pd.read_csv(tmp_path / "parameters.tsv", sep="\t")
    assert sorted(pars["parameterId"]) == sorted(f"{f}__donor_{k}" for f in FREE
                                                 for k in range(2))
    model = culture_model()
    for row in pars.itertuples():
        decl = model.parameter_by_name[row.parameterName]
        assert (row.lowerBound, row.upperBound) == (decl.low, decl.high)
        assert row.parameterScale == ("log" if decl.high / max(decl.low, 1e-300) > 10
                                      and decl.low > 0 else "lin")
        assert row.objectivePriorType == "parameterScaleUniform"
    meas = pd.read_csv(tmp_path / "measurements.tsv", sep="\t")
    assert set(np.round(meas["noiseParameters"], 6)) == {0.1, 0.15, 2.0, 3.0}
    cond = pd.read_csv(tmp_path / "conditions.tsv", sep="\t")
    assert list(cond["phi_max"]) == ["phi_max__donor_0", "phi_max__donor_1"]
    shared = write_petab(data, tmp_path / "shared", protocol=Protocol.load("cik-standard"),
                         free=FREE, shared=True)
    lint(shared)
    assert len(pd.read_csv(tmp_path / "shared" / "parameters.tsv", sep="\t")) == 2


def test_free_parameters_that_set_initial_amounts_are_refused(data, tmp_path):
    with pytest.raises(DataError, match="initial amounts"):
        write_petab(data, tmp_path, protocol=Protocol.load("cik-standard"), free=["f_cik0"])


@pytest.mark.slow
def test_pypesto_with_roadrunner_finds_ciksims_per_donor_fit(data, tmp_path):
    pypesto_petab = pytest.importorskip("pypesto.petab", reason="pypesto: interop extra")
    pytest.importorskip("roadrunner")
    import petab.v1 as petab
    import pypesto.optimize

    proto = Protocol.load("cik-standard")
    yaml = write_petab(data, tmp_path, protocol=proto, free=FREE)
    problem = pypesto_petab.PetabImporter(petab.Problem.from_yaml(str(yaml)),
                                          simulator_type="roadrunner").create_problem()
    names = list(problem.x_names)
    truth = np.array([DONORS["AB"[int(n[-1])]][n.split("__")[0]] for n in names])
    problem.set_x_guesses([truth])
    optimizer = pypesto.optimize.ScipyOptimizer(
        method="Nelder-Mead", options={"maxiter": 3000, "xatol": 1e-7, "fatol": 1e-9})
    best = pypesto.optimize.minimize(problem, optimizer=optimizer, n_starts=1,
                                     progress_bar=False).optimize_result.list[0]
    theirs = dict(zip(names, best.x, strict=True))
    liks = [donor_log_likelihood(data, d, proto, FREE)[0] for d in data.donors]
    # the same likelihood: objective differences agree between two parameter sets
    ours = [-sum(lik(np.array([[p[f"{f}__donor_{k}"] for f in FREE]]))[0]
                 for k, lik in enumerate(liks)) for p in (theirs, dict(zip(names, truth,
                                                                           strict=True)))]
    assert problem.objective(truth) - best.fval == pytest.approx(ours[1] - ours[0], rel=1e-3)
    # ciksim's optimum per donor lies within 1% of pyPESTO's: grid of +-2% in 0.25% steps
    offsets = np.linspace(-0.02, 0.02, 17)
    for k, lik in enumerate(liks):
        centre = np.array([theirs[f"{f}__donor_{k}"] for f in FREE])
        grid = np.array([centre * (1 + np.array([a, b])) for a in offsets for b in offsets])
        i, j = divmod(int(np.argmax(lik(grid))), len(offsets))
        assert max(abs(offsets[i]), abs(offsets[j])) <= 0.01, (k, offsets[i], offsets[j])
