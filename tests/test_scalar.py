"""Parameter-only terms hoisted out of the compiled right-hand side give the same numbers."""

import math

import numpy as np

from ciksim.engines.scalar import hoist_constant_terms, static_assignments
from ciksim.models.patient import patient_model


def test_hoisted_terms_are_parameter_only_and_exact():
    model = patient_model()
    static = {n: i for i, n in enumerate(static_assignments(model))}
    names = [p.name for p in model.processes] + [a.name for a in model.assignments
                                                 if a.name not in static]
    rewritten, terms = hoist_constant_terms(model, names, static)
    assert terms, "the patient model has parameter-only terms in its rate laws"
    dynamic = {*model.species_names, "t", *(n for n in names if n not in static)}
    assert all(not (e.symbols & dynamic) for e in terms.values())
    rng = np.random.default_rng(3)
    env = {"math": math, "min": min, "max": max, "t": 5.0}
    env.update({p.name: p.value * rng.uniform(0.5, 2.0) for p in model.parameters})
    env.update({s: float(rng.uniform(0.0, 1e9)) for s in model.species_names})
    for a in model.assignments:  # in dependency order
        env[a.name] = eval(model.expression(a.name).scalar(), env)
    for k, e in terms.items():
        env[k] = eval(e.scalar(), env)
    for name in names:
        original = eval(model.expression(name).scalar(), env)
        assert eval(rewritten[name].scalar(), env) == original, name


def test_reciprocal_hoisting_divides_nothing_by_a_parameter_and_agrees_to_rounding():
    model = patient_model()
    static = {n: i for i, n in enumerate(static_assignments(model))}
    names = [p.name for p in model.processes] + [a.name for a in model.assignments
                                                 if a.name not in static]
    rewritten, terms = hoist_constant_terms(model, names, static, reciprocals=True)
    assert any(e.text.startswith("1.0 /") for e in terms.values())
    rng = np.random.default_rng(4)
    env = {"math": math, "min": min, "max": max, "t": 5.0}
    env.update({p.name: p.value * rng.uniform(0.5, 2.0) for p in model.parameters})
    env.update({s: float(rng.uniform(0.0, 1e9)) for s in model.species_names})
    for a in model.assignments:
        env[a.name] = eval(model.expression(a.name).scalar(), env)
    for k, e in terms.items():
        env[k] = eval(e.scalar(), env)
    for name in names:
        original = eval(model.expression(name).scalar(), env)
        assert math.isclose(eval(rewritten[name].scalar(), env), original, rel_tol=1e-13,
                            abs_tol=1e-300), name
