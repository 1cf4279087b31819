"""SBML Level 3 Version 2 export of any declared model (python-libsbml), with its protocol.

Derived from the declaration, nothing written by hand:

- one compartment ``system`` (size 1); state variables counted in cells (or moles) are
  **species** (``hasOnlySubstanceUnits``, cells as ``item``) with their initial amounts set
  directly; the others (IU/mL and ng/mL concentrations, the medium capacity, the culture
  volume) are non-constant **parameters** with their own units and rate rules, because
  SBML species need a substance unit;
- every process that changes species is a **reaction** (SBO production, degradation or
  conversion; reactants and products from the stoichiometry; the rate law as kinetic law),
  so Gillespie tools simulate the discrete populations; changes to non-species state
  variables are rate rules; derived quantities are assignment rules;
- ids are the ciksim names and names repeat them (tools such as COPASI's PEtab import
  match by name); descriptions, units, ranges and sources are in the notes;
- every number in a formula is a constant parameter with its unit (exponents excepted), so
  libsbml's unit checks find nothing and text-based importers read the formulas;
- protocol events are SBML events (``time >= day``), same-day events ordered by priority.

What does not round-trip is listed in ``docs/sbml.md``.
"""

from __future__ import annotations

import ast
import html
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pint

from ciksim._version import __version__
from ciksim.errors import CikError
from ciksim.model import Model
from ciksim.model.expression import Expression
from ciksim.model.model import parameter_matrix
from ciksim.protocol import Event, Protocol
from ciksim.units import convert, parse_unit, registry

_DIMENSIONS = {  # pint base dimension -> (SBML unit kind, factor to that kind)
    "[length]": ("metre", 1.0),
    "[mass]": ("gram", 1000.0),  # pint's base mass is the kilogram
    "[time]": ("second", 1.0),
    "[substance]": ("mole", 1.0),
    "[cell_count]": ("item", 1.0),
}
SBO = {  # Systems Biology Ontology terms used
    "production": "SBO:0000393", "degradation": "SBO:0000179", "conversion": "SBO:0000182",
    "process": "SBO:0000375", "parameter": "SBO:0000002", "rate_law": "SBO:0000001",
    "material_entity": "SBO:0000240", "compartment": "SBO:0000290",
}
_FUNCTIONS = {"log": "ln"}
_FOLDED = {"log": math.log, "exp": math.exp, "sqrt": math.sqrt}
_XHTML = "http://www.w3.org/1999/xhtml"


def _libsbml():
    try:
        import libsbml
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise CikError("SBML export needs python-libsbml: pip install python-libsbml") from exc
    return libsbml


def _check(code: int, what: str) -> None:
    libsbml = _libsbml()
    if code != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise CikError(f"SBML export failed at {what}: "
                       f"{libsbml.OperationReturnValue_toString(code)}")


def is_species(unit: str) -> bool:
    """True when a state variable in ``unit`` is an SBML species (cells or moles)."""
    dims = dict(registry().Quantity(1.0, parse_unit(unit, field=unit)).dimensionality)
    return dims in ({"[cell_count]": 1}, {"[substance]": 1})


class _Units:
    """Unit definitions, one per distinct pint unit; ids readable (``u_cells_per_mL``)."""

    def __init__(self, model) -> None:
        self.model = model
        self.ids: dict[str, str] = {}

    def id_for(self, text: str) -> str:
        key = str(parse_unit(text, field=f"unit {text!r}"))
        if key in self.ids:
            return self.ids[key]
        libsbml = _libsbml()
        q = registry().Quantity(1.0, parse_unit(text, field=text)).to_base_units()
        uid = _unit_id(text, set(self.ids.values()))
        ud = self.model.createUnitDefinition()
        _check(ud.setId(uid), f"unit {text}")
        ud.setName(text)
        factor = float(q.magnitude)
        parts = []
        for dim, exp in q.dimensionality.items():
            if dim == "[biological_activity]":
                continue  # IU have no SBML unit kind: counted as dimensionless numbers
            kind, scale = _DIMENSIONS[dim]
            factor *= scale**exp
            parts.append((kind, float(exp)))
        if not parts:
            parts.append(("dimensionless", 1.0))
        for k, (kind, exp) in enumerate(parts):
            u = ud.createUnit()
            u.setKind(libsbml.UnitKind_forName(kind))
            u.setExponent(exp)
            u.setScale(0)
            u.setMultiplier(abs(factor) ** (1.0 / exp) if k == 0 else 1.0)
        self.ids[key] = uid
        return uid


def _unit_id(text: str, taken: set[str]) -> str:
    base = "u_" + "".join(c if c.isalnum() else "_" for c in
                          text.replace("/", "_per_").replace("**", "").replace(" ", ""))[:40]
    if text.strip() in ("", "1"):
        base = "u_one"
    uid, k = base, 1
    while uid in taken:
        k += 1
        uid = f"{base}_{k}"
    return uid


class _Writer:
    """Renders ciksim formulas as SBML L3 infix with a unit on every number."""

    def __init__(self, model: Model, units: _Units, sbml_model) -> None:
        self.model = model
        self.units = units
        self.sbml_model = sbml_model
        self.constants: dict[tuple[float, str], str] = {}
        self.taken = {*model.parameter_names, *model.species_names,
                      *(a.name for a in model.assignments), *(p.name for p in model.processes)}
        env: dict[str, pint.Unit] = {}
        for table in (model.parameters, model.species, model.assignments):
            for item in table:
                env[item.name] = parse_unit(item.unit, field=item.name)
        env["t"] = parse_unit(model.time_unit, field="t")
        self.env = env
        self.inline: dict[str, str] = {}  # derived quantities written into formulas

    def inline_assignments(self) -> None:
        """Write every derived quantity into the formulas that use it (in declaration
        order, so a later one may use an earlier one) instead of assignment rules."""
        for a in self.model.assignments:
            self.inline[a.name] = self.formula(self.model.expression(a.name))

    def symbols(self, expr: Expression) -> set[str]:
        """Names a formula reads once derived quantities written into it are expanded."""
        out, todo = set(), list(expr.symbols)
        while todo:
            name = todo.pop()
            if name in out:
                continue
            out.add(name)
            if name in self.inline:
                todo.extend(self.model.expression(name).symbols)
        return out

    def number(self, value: float, unit: str | pint.Unit) -> str:
        """A number of a formula, as a constant parameter with its unit (``n_0p25``,
        ``n_500_IU_per_mL``): numbers written with units inline (``sbml:units``) are lost
        or garbled by importers that print formulas as text (GillesPy2)."""
        text = str(unit) if isinstance(unit, pint.Unit) else unit
        uid = self.units.id_for(text or "1")
        key = (float(value), uid)
        if key not in self.constants:
            digits = f"{float(value):g}".replace("-", "m").replace("+", "").replace(".", "p")
            base = f"n_{digits}" + ("" if uid == "u_one" else "_" + uid.removeprefix("u_"))
            cid, k = base, 1
            while cid in self.taken:
                k += 1
                cid = f"{base}_{k}"
            self.taken.add(cid)
            par = self.sbml_model.createParameter()
            par.setId(cid)
            par.setName(cid)
            _sbo(par, "parameter")
            par.setValue(float(value))
            par.setUnits(uid)
            par.setConstant(True)
            _notes(par, f"the number {float(value):g} ({text or '1'}) of the model's formulas")
            self.constants[key] = cid
        return self.constants[key]

    def formula(self, expr: Expression, extra: Mapping[str, pint.Unit] | None = None,
                substitute: Mapping[str, str] | None = None) -> str:
        env = {**self.env, **(extra or {})}
        return self._render(expr.body, env, {**self.inline, **(substitute or {})}, None)

    def _unit(self, node: ast.expr, env: Mapping[str, pint.Unit]) -> pint.Unit:
        return Expression(ast.unparse(node)).units(env, where="SBML export")

    def _render(self, node: ast.expr, env, sub: Mapping[str, str], zero_unit) -> str:
        if isinstance(node, ast.Constant):
            unit = zero_unit if node.value == 0 and zero_unit is not None else "1"
            return self.number(float(node.value), unit)
        if isinstance(node, ast.Name):
            if node.id in sub:
                return f"({sub[node.id]})"
            return "time" if node.id == "t" else node.id
        if isinstance(node, ast.UnaryOp):
            sign = "-" if isinstance(node.op, ast.USub) else "+"
            return f"({sign}{self._render(node.operand, env, sub, zero_unit)})"
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, (ast.Add, ast.Sub)):
                unit_l = None if _zero(node.left) else self._unit(node.left, env)
                unit_r = None if _zero(node.right) else self._unit(node.right, env)
                left = self._render(node.left, env, sub, unit_r or zero_unit)
                right = self._render(node.right, env, sub, unit_l or zero_unit)
            elif isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant):
                left = self._render(node.left, env, sub, None)
                right = repr(float(node.right.value))  # an exponent is a pure number
            else:
                left = self._render(node.left, env, sub, None)
                right = self._render(node.right, env, sub, None)
            op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}[
                type(node.op)]
            return f"({left} {op} {right})"
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if node.func.id in _FOLDED and all(isinstance(a, ast.Constant) for a in node.args):
            # a function of numbers is a number (``log(2)``): tools that evaluate rate laws
            # as Python text without math functions (GillesPy2's NumPy SSA) read it
            value = _FOLDED[node.func.id](*(float(a.value) for a in node.args))
            return self.number(value, "1")
        units = [self._unit(a, env) for a in node.args if not _zero(a)]
        shared = units[0] if units and node.func.id in ("min", "max") else None
        args = ", ".join(self._render(a, env, sub, shared) for a in node.args)
        return f"{_FUNCTIONS.get(node.func.id, node.func.id)}({args})"


def _zero(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value == 0


def _math(text: str, where: str):
    libsbml = _libsbml()
    ast_ = libsbml.parseL3Formula(text)
    if ast_ is None:
        raise CikError(f"SBML export: cannot write {where}: {libsbml.getLastParseL3Error()}")
    return ast_


def _notes(element, *lines: str) -> None:
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
    _check(element.setNotes(f'<body xmlns="{_XHTML}">{body}</body>'), "notes")


def _sbo(element, key: str) -> None:
    _check(element.setSBOTerm(SBO[key]), f"SBO term {key}")


def initial_values(model: Model, values: Mapping[str, float]) -> dict[str, float]:
    """Initial value of every state variable under ``values`` (the declared expressions)."""
    p = parameter_matrix(model, dict(values))
    y0 = model.compiled.initial(p)
    return {s.name: float(np.asarray(y0[i]).ravel()[0]) for i, s in enumerate(model.species)}


def to_sbml(model: Model, protocol: Protocol | None = None,
            parameters: Mapping[str, float] | None = None, *, gillespie: bool = False) -> str:
    """The model (and protocol events) as an SBML L3V2 string, validated by libsbml.

    Parameter values are the defaults, then the protocol's settings (e.g. its seeding
    density), then ``parameters`` (e.g. a scenario's medians); initial values follow.
    ``gillespie=True`` writes the variant for Gillespie tools whose SSA accepts only
    species, parameters and reactions (GillesPy2): derived quantities are written into the
    rate laws instead of assignment rules, and every species starts at a whole number of
    cells. Events and rate rules (a protocol, non-cell state) are still written; such
    tools then need their hybrid solvers.
    A protocol with triggers is refused (SBML events cannot say "check on monitoring days,
    fire once, dose later" as ciksim's engines do, and dropping them would change the run).
    """
    _refuse_triggers(protocol)
    libsbml = _libsbml()
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId(f"ciksim_{model.name}")
    m.setName(f"{model.name} (ciksim {__version__})")
    _notes(m, model.description, f"Exported by ciksim {__version__}"
           + (f" with protocol {protocol.name!r}" if protocol else "") + ". Time in "
           f"{model.time_unit}s; cells are counted as items.")
    units = _Units(m)
    w = _Writer(model, units, m)
    if gillespie:
        w.inline_assignments()
    m.setTimeUnits(units.id_for(model.time_unit))
    m.setSubstanceUnits("item")
    m.setExtentUnits("item")
    comp = m.createCompartment()
    comp.setId("system")
    comp.setName("system")
    _sbo(comp, "compartment")
    comp.setConstant(True)
    comp.setSize(1.0)
    comp.setSpatialDimensions(3)
    comp.setUnits("dimensionless")
    _notes(comp, "The whole system (a culture, a well or a patient): amounts are totals.")
    values = model.default_parameters()
    if protocol is not None:
        values.update(protocol.parameter_values(model))
    values.update({k: float(v) for k, v in (parameters or {}).items()})
    for p in model.parameters:
        par = m.createParameter()
        par.setId(p.name)
        par.setName(p.name)
        _sbo(par, "parameter")
        par.setValue(float(values[p.name]))
        par.setUnits(units.id_for(p.unit))
        par.setConstant(True)
        _notes(par, p.description, f"unit: {p.unit}; plausible range [{p.low:g}, {p.high:g}]; "
               f"source: {p.source}")
    kept = m.createParameter()
    kept.setId("kept_fraction")
    kept.setName("kept_fraction")
    _sbo(kept, "parameter")
    kept.setValue(1.0)
    kept.setUnits(units.id_for("1"))
    kept.setConstant(False)
    _notes(kept, "cumulative fraction of the culture kept through discarding splits")
    init = initial_values(model, values)
    species = {s.name for s in model.species if is_species(s.unit)}
    for s in model.species:
        where = f"initial value of {s.name}: {model.expression('init:' + s.name)}"
        if s.name in species:
            sp = m.createSpecies()
            sp.setCompartment("system")
            sp.setHasOnlySubstanceUnits(True)
            sp.setBoundaryCondition(False)
            sp.setSubstanceUnits(units.id_for(s.unit))
            # whole cells, as ciksim's stochastic engine (every population for a Gillespie tool)
            discrete = gillespie or "stochastic" in s.roles
            sp.setInitialAmount(float(round(init[s.name])) if discrete else init[s.name])
            _sbo(sp, "material_entity")
        else:
            sp = m.createParameter()
            sp.setUnits(units.id_for(s.unit))
            sp.setValue(init[s.name])
            _sbo(sp, "parameter")
        sp.setId(s.name)
        sp.setName(s.name)
        sp.setConstant(False)
        _notes(sp, s.description, f"unit: {s.unit}; kind: {s.kind}"
               + (f"; roles: {', '.join(s.roles)}" if s.roles else ""), where)
    for a in () if gillespie else model.assignments:
        par = m.createParameter()
        par.setId(a.name)
        par.setName(a.name)
        _sbo(par, "parameter")
        par.setUnits(units.id_for(a.unit))
        par.setConstant(False)
        _notes(par, a.description, f"unit: {a.unit}; = {model.expression(a.name)}")
        rule = m.createAssignmentRule()
        rule.setVariable(a.name)
        _check(rule.setMath(_math(w.formula(model.expression(a.name)), a.name)), a.name)
    rate_terms: dict[str, list[str]] = {}
    for pr in model.processes:
        law = w.formula(model.expression(pr.name))
        on_species = {k: c for k, c in pr.changes.items() if k in species}
        for name, c in pr.changes.items():
            if name not in species:
                rate_terms.setdefault(name, []).append(f"{w.number(c, '1')} * {law}")
        if on_species:
            _reaction(m, model, pr, on_species, law, species, w)
    for s in model.species:
        if s.name in rate_terms:
            rule = m.createRateRule()
            rule.setVariable(s.name)
            _check(rule.setMath(_math(" + ".join(rate_terms[s.name]), f"rate of {s.name}")),
                   s.name)
    if protocol is not None:
        for k, ev in enumerate(protocol.events):
            _event(m, w, ev, k, len(protocol.events), protocol.name)
    errors = validate(doc)
    if errors:
        raise CikError("SBML export produced invalid SBML:\n" + "\n".join(errors))
    return libsbml.writeSBMLToString(doc)


def _refuse_triggers(protocol: Protocol | None) -> None:
    if protocol is not None and protocol.triggers:
        names = ", ".join(repr(t.name) for t in protocol.triggers)
        raise CikError(f"protocol {protocol.name!r}: triggers {names}: SBML export cannot "
                       "express triggered doses (a condition checked on monitoring days, "
                       "firing once, doses at offsets); export the protocol without its "
                       "triggers (its fixed events are exported) or run the triggers in ciksim")


def _reaction(m, model: Model, pr, changes: Mapping[str, float], law: str,
              species: set[str], w: _Writer) -> None:
    r = m.createReaction()
    r.setId(pr.name)
    r.setName(pr.name)
    r.setReversible(False)
    reactants = {k: -c for k, c in changes.items() if c < 0}
    products = {k: c for k, c in changes.items() if c > 0}
    if not reactants and len(products) == 1:
        kind = "production"
    elif not products and len(reactants) == 1:
        kind = "degradation"
    elif len(reactants) == 1 and len(products) == 1:
        kind = "conversion"
    else:
        kind = "process"
    _sbo(r, kind)
    _notes(r, pr.description, f"rate ({model.unit_of(next(iter(changes)))}/"
           f"{model.time_unit}): {model.expression(pr.name)}")
    for name, c in reactants.items():
        ref = r.createReactant()
        ref.setSpecies(name)
        ref.setStoichiometry(float(c))
        ref.setConstant(True)
    for name, c in products.items():
        ref = r.createProduct()
        ref.setSpecies(name)
        ref.setStoichiometry(float(c))
        ref.setConstant(True)
    for name in sorted((w.symbols(model.expression(pr.name)) & species) - set(changes)):
        mod = r.createModifier()
        mod.setSpecies(name)
    kl = r.createKineticLaw()
    _sbo(kl, "rate_law")
    _check(kl.setMath(_math(law, f"rate law of {pr.name}")), pr.name)


def validate(doc) -> list[str]:
    """libsbml consistency check (units included); the messages of errors (not warnings)."""
    return [text for severity, _, text in consistency(doc) if severity == "error"]


def consistency(doc) -> list[tuple[str, str, str]]:
    """Every libsbml consistency message as (severity, category, text), units checked."""
    libsbml = _libsbml()
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, True)
    doc.checkConsistency()
    out = []
    for i in range(doc.getNumErrors()):
        err = doc.getError(i)
        severity = "error" if err.getSeverity() >= libsbml.LIBSBML_SEV_ERROR else "warning"
        out.append((severity, err.getCategoryAsString(),
                    f"line {err.getLine()}: {err.getMessage().strip()}"))
    return out


def _event(m, w: _Writer, ev: Event, k: int, total: int, proto: str) -> None:
    assignments = _event_assignments(w, ev, proto)
    if not assignments:
        return
    e = m.createEvent()
    e.setId(f"event_{k}_{ev.action}_day_{str(ev.day).replace('.', '_')}")
    e.setName(f"{ev.action} on day {ev.day:g}")
    e.setUseValuesFromTriggerTime(False)  # same-day events see the ones before them
    _notes(e, f"protocol {proto!r}: {ev.action} on day {ev.day:g}", ev.note)
    trig = e.createTrigger()
    trig.setInitialValue(False)
    trig.setPersistent(True)
    day = float(convert(f"{float(ev.day)!r} day", w.model.time_unit, field="event day"))
    _check(trig.setMath(_math(f"time >= {w.number(day, w.model.time_unit)}", "trigger")),
           "trigger")
    prio = e.createPriority()
    _check(prio.setMath(_math(w.number(total - k, "1"), "priority")), "priority")
    for var, formula in assignments:
        ea = e.createEventAssignment()
        ea.setVariable(var)
        _check(ea.setMath(_math(formula, f"event {k} assignment to {var}")), var)


def _event_assignments(w: _Writer, ev: Event, proto: str) -> list[tuple[str, str]]:
    model = w.model
    where = f"protocol {proto!r}, {ev.action} on day {ev.day:g}"
    if ev.action in ("set", "add"):
        out = []
        for name, value in ev.values.items():
            unit = model.species_by_name[name].unit
            v = w.number(convert(value, unit, field=where), unit)
            out.append((name, f"{name} + {v}" if ev.action == "add" else v))
        return out
    if ev.action == "harvest":
        return []
    if ev.action == "dose":
        decl = model.dose_by_name[str(ev.dose)]
        amount = w.number(convert(ev.amount, decl.unit, field=where), decl.unit)
        extra = {"amount": parse_unit(decl.unit, field=where)}
        out = []
        for sp in sorted(set(decl.adds) | set(decl.scales)):
            f = sp
            for kind in ("scales", "adds"):
                if sp in getattr(decl, kind):
                    term = w.formula(model.expression(f"dose:{decl.name}:{kind}:{sp}"), extra,
                                     {"amount": amount})
                    f = f"{f} * ({term})" if kind == "scales" else f"{f} + ({term})"
            out.append((sp, f))
        return out
    return _medium_assignments(w, ev, where)


def _medium_assignments(w: _Writer, ev: Event, where: str) -> list[tuple[str, str]]:
    """Feed and split: volume, dilution towards fresh medium, top-up, discarding."""
    model = w.model
    vols = [s.name for s in model.species if s.kind == "volume"]
    cells = [c for c in model.with_role("cells") if c in model.species_by_name]
    if len(vols) != 1 or not cells:
        raise CikError(f"{where}: the model has no culture volume and cells")
    v = vols[0]
    unit = model.species_by_name[v].unit
    conc = [s for s in model.species if s.kind == "concentration"]
    top = {n: w.number(convert(x, model.species_by_name[n].unit, field=where),
                       model.species_by_name[n].unit) for n, x in ev.top_up.items()}

    def topped(name: str, formula: str) -> str:
        return f"max({formula}, {top[name]})" if name in top else formula

    def medium(s) -> str:
        return w.number(s.medium, s.unit)

    one = w.number(1.0, "1")
    total = " + ".join(cells)
    if ev.action == "feed":
        added = (f"{w.number(float(ev.volume_fraction), '1')} * {v}"
                 if ev.volume_fraction is not None
                 else w.number(convert(ev.volume, unit, field=where), unit))
        out = [(v, f"{v} + {added}")]
        for s in conc:
            out.append((s.name, topped(s.name, f"({s.name} * {v} + {medium(s)} * ({added}))"
                                                f" / ({v} + {added})")))
        return out
    dens = f"({model.species_by_name[cells[0]].unit})/({unit})"
    dmax = w.number(convert(ev.max_density, dens, field=where), dens)
    dtarget = w.number(convert(ev.target_density, dens, field=where), dens)
    hit = f"({total}) / {v} > {dmax}"
    if ev.cells == "keep":
        new_v = f"({total}) / {dtarget}"
        out = [(v, f"piecewise({new_v}, {hit}, {v})")]
        for s in conc:
            diluted = topped(s.name, f"({s.name} * {v} + {medium(s)} * ({new_v} - {v})) / "
                                     f"({new_v})")
            out.append((s.name, f"piecewise({diluted}, {hit}, {s.name})"))
        return out
    frac = f"({dtarget} * {v} / ({total}))"
    out = [(c, f"piecewise({c} * {frac}, {hit}, {c})")
           for c in [s.name for s in model.species if s.kind == "amount"]]
    out.append(("kept_fraction", f"piecewise(kept_fraction * {frac}, {hit}, kept_fraction)"))
    for s in conc:
        mixed = topped(s.name, f"{s.name} * {frac} + {medium(s)} * ({one} - {frac})")
        out.append((s.name, f"piecewise({mixed}, {hit}, {s.name})"))
    return out


def write_sbml(model: Model, path: str | Path, protocol: Protocol | None = None,
               parameters: Mapping[str, float] | None = None, *,
               gillespie: bool = False) -> Path:
    """Write the SBML file atomically; returns its path."""
    text = to_sbml(model, protocol, parameters, gillespie=gillespie)
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p


__all__ = ["consistency", "initial_values", "is_species", "to_sbml", "validate",
           "write_sbml"]
