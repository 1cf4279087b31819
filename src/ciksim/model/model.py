"""The Model: a validated, immutable set of declarations, and everything derived from it.

The ODE right-hand side, the output evaluator and the Markdown documentation are all
derived here from the one declaration; nothing about a model is written twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

import numpy as np

from ciksim import unit_cache
from ciksim.errors import ModelError, UnitError
from ciksim.model.declarations import Assignment, Dose, Parameter, Process, Species, parse
from ciksim.model.expression import FUNCTIONS, Expression
from ciksim.units import describe, parse_unit, same_unit

TIME_UNIT = "day"


@dataclass(frozen=True)
class Model:
    """A kinetic model: species, parameters, assignments (in dependency order) and processes.

    Validated on construction: unique names, no unknown symbols, assignments only use what
    is declared before them, units consistent (pint), parameter values within range.
    ``time_unit`` (``"day"`` or ``"hour"``) is the unit of time of the rate laws and of the
    times given to and returned by the engines.
    """

    name: str
    description: str
    species: tuple[Species, ...]
    parameters: tuple[Parameter, ...]
    processes: tuple[Process, ...]
    assignments: tuple[Assignment, ...] = ()
    time_unit: str = TIME_UNIT
    doses: tuple[Dose, ...] = ()
    _exprs: Mapping[str, Expression] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in ("species", "parameters", "processes", "assignments", "doses"):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        names: dict[str, str] = {}
        for kind, items in (
            ("species", self.species),
            ("parameter", self.parameters),
            ("assignment", self.assignments),
            ("process", self.processes),
            ("dose", self.doses),
        ):
            for item in items:
                if item.name in names:
                    raise ModelError(
                        f"model {self.name!r}: name {item.name!r} is declared twice "
                        f"(as {names[item.name]} and {kind}); rename one"
                    )
                names[item.name] = kind
        if self.time_unit not in ("day", "hour"):
            raise ModelError(f"model {self.name!r}: time_unit must be 'day' or 'hour'")
        exprs: dict[str, Expression] = {}
        known = {p.name for p in self.parameters}
        for sp in self.species:
            where = f"species {sp.name!r}.initial"
            expr = parse(sp.initial, where)
            self._check_symbols(expr, known, where)
            exprs[f"init:{sp.name}"] = expr
        known |= {"t", *(s.name for s in self.species)}
        for a in self.assignments:
            where = f"assignment {a.name!r}"
            expr = parse(a.expr, where)
            self._check_symbols(expr, known, where)
            known.add(a.name)
            exprs[a.name] = expr
        species_names = {s.name for s in self.species}
        for p in self.processes:
            where = f"process {p.name!r}"
            expr = parse(p.rate, f"{where}.rate")
            self._check_symbols(expr, known, where)
            for sp in p.changes:
                if sp not in species_names:
                    raise ModelError(
                        f"{where} changes unknown species {sp!r}; declare it or fix the name"
                    )
            exprs[p.name] = expr
        for d in self.doses:
            env = {p.name for p in self.parameters} | {"amount"}
            for kind, mapping in (("adds", d.adds), ("scales", d.scales)):
                for sp, text in mapping.items():
                    where = f"dose {d.name!r}.{kind}[{sp}]"
                    if sp not in species_names:
                        raise ModelError(f"{where}: unknown species {sp!r}")
                    expr = parse(text, where)
                    self._check_symbols(expr, env, where + " (parameters and amount)")
                    exprs[f"dose:{d.name}:{kind}:{sp}"] = expr
        object.__setattr__(self, "_exprs", MappingProxyType(exprs))
        key = self.unit_key()
        if not unit_cache.recall("model", key):
            self._check_units()
            unit_cache.remember("model", key)
            unit_cache.flush()  # the model's unit facts in one write

    def unit_key(self) -> str:
        """Hash of what the unit check reads: time unit, every declared name, unit and
        expression (not values, ranges or descriptions, so a model with other parameter
        values shares its verdict)."""
        content = [
            self.time_unit,
            [(p.name, p.unit) for p in self.parameters],
            [(s.name, s.unit, s.initial) for s in self.species],
            [(a.name, a.unit, a.expr) for a in self.assignments],
            [(p.name, p.rate, sorted(p.changes)) for p in self.processes],
            [(d.name, d.unit, sorted(d.adds.items()), sorted(d.scales.items()))
             for d in self.doses],
        ]
        return hashlib.sha256(json.dumps(content).encode("utf-8")).hexdigest()

    def _check_units(self) -> None:
        """pint's check that every expression has its declared unit (UnitError names the
        first that does not)."""
        units = {p.name: parse_unit(p.unit, field=p.name) for p in self.parameters}
        units["t"] = parse_unit(self.time_unit, field="t")
        for sp in self.species:
            expr = self._exprs[f"init:{sp.name}"]
            if expr.symbols:  # a bare number is read in the species' own unit
                self._check_unit(expr, units, sp.unit, f"species {sp.name!r}.initial")
        for sp in self.species:
            units[sp.name] = parse_unit(sp.unit, field=sp.name)
        for a in self.assignments:
            self._check_unit(self._exprs[a.name], units, a.unit, f"assignment {a.name!r}")
            units[a.name] = parse_unit(a.unit, field=a.name)
        for p in self.processes:
            for sp in p.changes:
                self._check_unit(self._exprs[p.name], units,
                                 f"({self.species_by_name[sp].unit})/{self.time_unit}",
                                 f"process {p.name!r} (rate for {sp})")
        param_units = {k: v for k, v in units.items() if k in self.parameter_by_name}
        for d in self.doses:
            env = {**param_units, "amount": parse_unit(d.unit, field=f"dose {d.name!r}")}
            for kind, mapping in (("adds", d.adds), ("scales", d.scales)):
                for sp in mapping:
                    unit = self.species_by_name[sp].unit if kind == "adds" else "1"
                    self._check_unit(self._exprs[f"dose:{d.name}:{kind}:{sp}"], env, unit,
                                     f"dose {d.name!r}.{kind}[{sp}]")


    @staticmethod
    def _check_symbols(expr: Expression, known: set[str], where: str) -> None:
        unknown = sorted(expr.symbols - known)
        if unknown:
            raise ModelError(
                f"{where} uses unknown symbol(s) {', '.join(unknown)}; declare them "
                "(assignments may only use names declared before them)"
            )

    @staticmethod
    def _check_unit(expr: Expression, units, declared: str, where: str) -> None:
        got = expr.units(units, where=where)
        want = parse_unit(declared, field=where)
        if not same_unit(got, want):
            raise UnitError(
                f"{where}: {expr.text!r} has unit {describe(got)} but {describe(want)} is "
                "declared; fix the rate law or the declared unit"
            )

    # ---- lookup -------------------------------------------------------------------------
    @cached_property
    def species_by_name(self) -> Mapping[str, Species]:
        return MappingProxyType({s.name: s for s in self.species})

    @cached_property
    def parameter_by_name(self) -> Mapping[str, Parameter]:
        return MappingProxyType({p.name: p for p in self.parameters})

    @cached_property
    def dose_by_name(self) -> Mapping[str, Dose]:
        return MappingProxyType({d.name: d for d in self.doses})

    @cached_property
    def _dose_functions(self) -> dict[tuple[str, str, str], Callable[..., np.ndarray]]:
        return {}

    def dose_function(self, dose: str, kind: str, species: str) -> Callable[..., np.ndarray]:
        """Vectorised ``f(p, amount)`` for a dose's ``adds`` or ``scales`` entry (built once
        per model: every simulation binds its protocol's doses)."""
        key = (dose, kind, species)
        if key not in self._dose_functions:
            self._dose_functions[key] = self._build_dose_function(dose, kind, species)
        return self._dose_functions[key]

    def _build_dose_function(self, dose: str, kind: str, species: str
                             ) -> Callable[..., np.ndarray]:
        expr = self._exprs[f"dose:{dose}:{kind}:{species}"]
        lines = ["def _f(p, amount):"]
        lines += [f"    {q.name} = p[{i}]" for i, q in enumerate(self.parameters)]
        lines.append(f"    return {expr.python()} + 0.0 * p[0]")
        namespace: dict[str, object] = {}
        for fname, fn in FUNCTIONS.items():
            namespace[f"_np_{fname}" if fname not in ("min", "max") else f"_np_{fname}imum"] = fn
        exec(compile("\n".join(lines) + "\n", f"<dose {dose}>", "exec"), namespace)
        return namespace["_f"]  # type: ignore[return-value]

    @cached_property
    def assignment_by_name(self) -> Mapping[str, Assignment]:
        return MappingProxyType({a.name: a for a in self.assignments})

    @property
    def species_names(self) -> list[str]:
        return [s.name for s in self.species]

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def unit_of(self, name: str) -> str:
        """Declared unit of a species, assignment or parameter."""
        for table in (self.species_by_name, self.assignment_by_name, self.parameter_by_name):
            if name in table:
                return table[name].unit
        raise ModelError(f"model {self.name!r} has no variable {name!r}")

    def with_role(self, role: str) -> list[str]:
        """Names of species and assignments labelled with ``role``."""
        out = [s.name for s in self.species if role in s.roles]
        out += [a.name for a in self.assignments if role in a.roles]
        return out

    def the(self, role: str) -> str:
        """The single variable carrying ``role``; raises ModelError if not exactly one."""
        found = self.with_role(role)
        if len(found) != 1:
            raise ModelError(
                f"model {self.name!r}: expected one variable with role {role!r}, found {found}"
            )
        return found[0]

    def default_parameters(self) -> dict[str, float]:
        return {p.name: float(p.value) for p in self.parameters}

    def stoichiometry(self) -> np.ndarray:
        """Matrix (species × processes) of stoichiometric coefficients."""
        idx = {s: i for i, s in enumerate(self.species_names)}
        mat = np.zeros((len(self.species), len(self.processes)))
        for j, p in enumerate(self.processes):
            for sp, c in p.changes.items():
                mat[idx[sp], j] = c
        return mat

    def expression(self, key: str) -> Expression:
        """Parsed expression of an assignment or process, or ``"init:<species>"``."""
        return self._exprs[key]

    # ---- code generation ----------------------------------------------------------------
    @cached_property
    def compiled(self) -> CompiledModel:
        return CompiledModel.build(self)

    def to_markdown(self) -> str:
        from ciksim.model.markdown import model_markdown

        return model_markdown(self)


@dataclass(frozen=True)
class CompiledModel:
    """Vectorised numpy functions generated from a model's declaration.

    Every function works on arrays whose last axis is the batch (donors, patients):
    ``rhs(t, y, p)`` with ``y`` of shape (n_species, n) and ``p`` (n_parameters, n) returns
    dy/dt; ``assignments(t, y, p)`` returns a dict of derived quantities; ``initial(p)``
    returns the initial state.
    """

    rhs: Callable[[float, np.ndarray, np.ndarray], np.ndarray]
    rates: Callable[[float, np.ndarray, np.ndarray], np.ndarray]
    assignments: Callable[[float, np.ndarray, np.ndarray], dict[str, np.ndarray]]
    initial: Callable[[np.ndarray], np.ndarray]
    source: str

    @classmethod
    def build(cls, model: Model) -> CompiledModel:
        lines: list[str] = []

        def unpack(with_state: bool) -> list[str]:
            out = [f"    {p.name} = p[{i}]" for i, p in enumerate(model.parameters)]
            if with_state:
                out += [f"    {s.name} = y[{i}]" for i, s in enumerate(model.species)]
                out += [f"    {a.name} = {model.expression(a.name).python()}"
                        for a in model.assignments]
            return out

        lines.append("def _initial(p):")
        lines += unpack(False)
        shape = "_np_shape(p[0])" if model.parameters else "()"
        inits = ", ".join(
            f"{model.expression('init:' + s.name).python()} + _np_zeros({shape})"
            for s in model.species
        )
        lines.append(f"    return _np_array([{inits}])")
        lines.append("")
        lines.append("def _assignments(t, y, p):")
        lines += unpack(True)
        assigned = ", ".join(f"{a.name!r}: {a.name} + 0.0 * y[0]" for a in model.assignments)
        lines.append(f"    return {{{assigned}}}")
        lines.append("")
        lines.append("def _rates(t, y, p):")
        lines += unpack(True)
        for pr in model.processes:
            lines.append(f"    {pr.name} = {model.expression(pr.name).python()}")
        rates = ", ".join(f"{pr.name} + 0.0 * y[0]" for pr in model.processes)
        lines.append(f"    return _np_array([{rates}])")
        lines.append("")
        lines.append("def _rhs(t, y, p):")
        lines += unpack(True)
        for pr in model.processes:
            lines.append(f"    {pr.name} = {model.expression(pr.name).python()}")
        lines.append("    dy = _np_zeros(y.shape)")
        for i, s in enumerate(model.species):
            terms = _flux_terms(model, s.name)
            if terms:
                lines.append(f"    dy[{i}] = {terms}")
        lines.append("    return dy")
        source = "\n".join(lines) + "\n"
        namespace: dict[str, object] = {
            "_np_array": np.array,
            "_np_zeros": np.zeros,
            "_np_shape": np.shape,
        }
        for fname, fn in FUNCTIONS.items():
            namespace[f"_np_{fname}" if fname not in ("min", "max") else f"_np_{fname}imum"] = fn
        code = compile(source, f"<ciksim model {model.name}>", "exec")
        exec(code, namespace)
        return cls(
            rhs=namespace["_rhs"],  # type: ignore[arg-type]
            rates=namespace["_rates"],  # type: ignore[arg-type]
            assignments=namespace["_assignments"],  # type: ignore[arg-type]
            initial=namespace["_initial"],  # type: ignore[arg-type]
            source=source,
        )


def _flux_terms(model: Model, species: str) -> str:
    terms = []
    for pr in model.processes:
        c = pr.changes.get(species)
        if c is None:
            continue
        if c == 1:
            terms.append(f"+ {pr.name}")
        elif c == -1:
            terms.append(f"- {pr.name}")
        else:
            terms.append(f"+ ({float(c)!r}) * {pr.name}")
    return " ".join(terms).lstrip("+ ").strip() if terms else ""


def ode_terms(model: Model, species: str) -> list[tuple[float, Process]]:
    """(coefficient, process) pairs making up d[species]/dt (used for documentation)."""
    return [(pr.changes[species], pr) for pr in model.processes if species in pr.changes]


def assert_known(model: Model, names: Iterable[str], what: str) -> None:
    """Raise ModelError naming the unknown entries among ``names``."""
    known = set(model.parameter_names)
    bad = sorted(set(names) - known)
    if bad:
        raise ModelError(
            f"{what}: unknown parameter(s) {', '.join(bad)} for model {model.name!r}; "
            f"known: {', '.join(sorted(known))}"
        )


def parameter_matrix(model: Model, overrides: Mapping[str, object] | None) -> np.ndarray:
    """(n_parameters, n_batch) matrix from defaults and overrides (scalars or 1-D arrays)."""
    overrides = dict(overrides or {})
    assert_known(model, overrides, "parameters")
    sizes = {np.size(v) for v in overrides.values() if np.ndim(v) > 0}
    if len(sizes) > 1:
        raise ModelError(
            f"parameters: batched values have different lengths {sorted(sizes)}; "
            "give every batched parameter the same number of values"
        )
    n = sizes.pop() if sizes else 1
    mat = np.empty((len(model.parameters), n))
    for i, p in enumerate(model.parameters):
        v = np.asarray(overrides.get(p.name, p.value), dtype=float)
        if not np.all(np.isfinite(v)):
            raise ModelError(f"parameters.{p.name}: values must be finite numbers")
        mat[i] = v
    return mat
