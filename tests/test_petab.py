"""PEtab export: per donor, sd carried, ciksim's scales and bounds; pyPESTO with a
roadrunner objective finds ciksim's per-donor fit."""

import numpy as np
import pandas as pd
import pytest

from ciksim.errors import DataError
from ciksim.inference.culture import (
    CultureData,
    DonorFit,
    donor_log_likelihood,
    log_scaled,
    simulated_counts,
)
from ciksim.inference.petab_export import MIN_SPREAD, lint, population_priors, write_petab
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
                         free=FREE, mode="pooled")
    lint(shared)
    assert len(pd.read_csv(tmp_path / "shared" / "parameters.tsv", sep="\t")) == 2


def fake_fits(free, centres, sd, n=4000, seed=1):
    """Per-donor posterior samples, normal on each parameter's fitting scale."""
    model = culture_model()
    rng = np.random.default_rng(seed)
    fits = []
    for k, centre in enumerate(centres):
        cols = []
        for f, c in zip(free, centre, strict=True):
            x = c + sd * rng.standard_normal(n)
            cols.append(np.exp(x) if log_scaled(model.parameter_by_name[f]) else x)
        fits.append(DonorFit(f"donor{k}", tuple(free), np.column_stack(cols), 1e8,
                             Protocol.load("cik-standard")))
    return fits


def test_population_priors_are_the_moment_estimates_on_the_fitting_scale():
    model = culture_model()
    wide = next(p.name for p in model.parameters if log_scaled(p))
    free = ["phi_max", wide]
    p = model.parameter_by_name[wide]
    centres = [(0.4, np.log(p.value) - 0.5), (0.5, np.log(p.value)), (0.6, np.log(p.value) + 0.5)]
    priors = population_priors(fake_fits(free, centres, sd=0.05))
    # between-donor variance = variance of the medians less the within-donor variance
    assert priors["phi_max"][0] == pytest.approx(0.5, abs=0.005)
    assert priors["phi_max"][1] == pytest.approx(np.sqrt(0.01 - 0.05**2), rel=0.05)
    assert priors[wide][0] == pytest.approx(np.log(p.value), abs=0.005)
    assert priors[wide][1] == pytest.approx(np.sqrt(0.25 - 0.05**2), rel=0.05)
    same = population_priors(fake_fits(free, [centres[1]] * 3, sd=0.05))  # no spread
    decl = model.parameter_by_name["phi_max"]
    assert same["phi_max"][1] == pytest.approx(MIN_SPREAD * (decl.high - decl.low))
    with pytest.raises(DataError, match="at least 2 donors"):
        population_priors(fake_fits(free, centres[:1], sd=0.05))


def test_hierarchical_mode_writes_normal_priors_at_the_population_and_lints(data, tmp_path):
    fits = fake_fits(FREE, [(0.6, 0.05), (0.4, 0.08)], sd=0.02)
    yaml = write_petab(data, tmp_path, protocol=Protocol.load("cik-standard"), free=FREE,
                       mode="hierarchical", fits=fits)
    lint(yaml)
    pars = pd.read_csv(tmp_path / "parameters.tsv", sep="\t")
    priors = population_priors(fits)
    assert len(pars) == 4 and set(pars["objectivePriorType"]) == {"parameterScaleNormal"}
    for row in pars.itertuples():
        mean, sd = (float(x) for x in row.objectivePriorParameters.split(";"))
        assert (mean, sd) == pytest.approx(priors[row.parameterName])
        assert row.parameterId.startswith(row.parameterName + "__donor_")
    with pytest.raises(DataError, match="needs ciksim's per-donor fits"):
        write_petab(data, tmp_path, protocol=Protocol.load("cik-standard"), free=FREE,
                    mode="hierarchical")
    with pytest.raises(DataError, match="not one of per-donor, pooled, hierarchical"):
        write_petab(data, tmp_path, protocol=Protocol.load("cik-standard"), free=FREE,
                    mode="random")


def test_cli_petab_mode(data, tmp_path):
    from typer.testing import CliRunner

    from ciksim.cli import app

    csv = tmp_path / "counts.csv"
    data.rows.to_csv(csv, index=False)
    out = tmp_path / "petab"
    r = CliRunner().invoke(app, ["fit", "culture", str(csv), "--free", "phi_max,k_conv",
                                 "--walkers", "24", "--steps", "30", "--petab", str(out),
                                 "--petab-mode", "hierarchical", "--json"])
    assert r.exit_code == 0, r.output
    pars = pd.read_csv(out / "parameters.tsv", sep="\t")
    assert set(pars["objectivePriorType"]) == {"parameterScaleNormal"} and len(pars) == 4
    r = CliRunner().invoke(app, ["fit", "culture", str(csv), "--petab", str(out),
                                 "--petab-mode", "mixed"])
    assert r.exit_code == 2 and "not one of per-donor, pooled, hierarchical" in r.output


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


def hierarchical_problem(data, tmp_path):
    """pyPESTO's problem (roadrunner) of the hierarchical export, the parameter names, the
    truth, ciksim's penalised objective of donor k (``f(k, rows of FREE values)``) and the
    normal population penalty alone (``penalty(rows)``)."""
    pypesto_petab = pytest.importorskip("pypesto.petab", reason="pypesto: interop extra")
    pytest.importorskip("roadrunner")
    import petab.v1 as petab

    proto = Protocol.load("cik-standard")
    fits = fake_fits(FREE, [(0.6, 0.05), (0.4, 0.08)], sd=0.02)
    yaml = write_petab(data, tmp_path, protocol=proto, free=FREE, mode="hierarchical",
                       fits=fits)
    problem = pypesto_petab.PetabImporter(petab.Problem.from_yaml(str(yaml)),
                                          simulator_type="roadrunner").create_problem()
    names = list(problem.x_names)
    priors = population_priors(fits)
    liks = [donor_log_likelihood(data, d, proto, FREE)[0] for d in data.donors]
    mean = np.array([priors[f][0] for f in FREE])
    sd = np.array([priors[f][1] for f in FREE])

    def penalty(rows):
        return 0.5 * np.sum(((np.atleast_2d(rows) - mean) / sd) ** 2, axis=1)

    def penalised(k, rows):
        return penalty(rows) - liks[k](np.atleast_2d(rows))

    truth = np.array([DONORS["AB"[int(n[-1])]][n.split("__")[0]] for n in names])
    return problem, names, truth, penalised, penalty


def per_donor(names, x, k):
    p = dict(zip(names, x, strict=True))
    return np.array([p[f"{f}__donor_{k}"] for f in FREE])


def test_pypesto_objective_is_ciksims_likelihood_plus_the_population_prior(data, tmp_path):
    """The hierarchical export is the penalised (empirical-Bayes) problem it claims to be:
    pyPESTO's objective (roadrunner, priors aggregated) changes between two parameter sets
    exactly as ciksim's negative log-likelihood plus the normal population penalty."""
    problem, names, truth, penalised, penalty = hierarchical_problem(data, tmp_path)

    def ours(x):
        return sum(penalised(k, per_donor(names, x, k))[0] for k in range(2))

    other = truth * np.array([1.1, 0.9, 0.95, 1.05])
    assert problem.objective(other) - problem.objective(truth) == pytest.approx(
        ours(other) - ours(truth), rel=1e-4)
    # the prior is a real part of that difference (not lost in the likelihood's)
    shift = sum(penalty(per_donor(names, other, k)) - penalty(per_donor(names, truth, k))
                for k in range(2))
    assert abs(shift) > 0.05 * abs(ours(other) - ours(truth))


@pytest.mark.slow
def test_pypesto_map_of_the_hierarchical_export_is_ciksims_penalised_optimum(data, tmp_path):
    pytest.importorskip("pypesto", reason="pypesto: interop extra")
    import pypesto.optimize

    problem, names, truth, penalised, _ = hierarchical_problem(data, tmp_path)
    problem.set_x_guesses([truth])
    optimizer = pypesto.optimize.ScipyOptimizer(
        method="Nelder-Mead", options={"maxiter": 3000, "xatol": 1e-7, "fatol": 1e-9})
    best = pypesto.optimize.minimize(problem, optimizer=optimizer, n_starts=1,
                                     progress_bar=False).optimize_result.list[0]
    # ciksim's penalised optimum per donor lies within 1% of pyPESTO's MAP: +-2% grid
    offsets = np.linspace(-0.02, 0.02, 17)
    for k in range(2):
        centre = per_donor(names, best.x, k)
        grid = np.array([centre * (1 + np.array([a, b])) for a in offsets for b in offsets])
        i, j = divmod(int(np.argmin(penalised(k, grid))), len(offsets))
        assert max(abs(offsets[i]), abs(offsets[j])) <= 0.01, (k, offsets[i], offsets[j])
