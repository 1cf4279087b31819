"""SBML Level 3 Version 2 export of any declared model (python-libsbml), with its protocol.

What is written: one compartment; every state variable as a species with
``hasOnlySubstanceUnits`` and a rate rule (the sum of its processes' rate laws, as in the
ODE engine); parameters with units (unit definitions derived with pint); initial values as
initial assignments; derived quantities as assignment rules; protocol events as SBML
events (``time >= day``), same-day events ordered by priority. What does not round-trip is
listed in ``docs/sbml.md``: the stochastic (birth-death) treatment of discrete cells, the
binomial thinning of a chemotherapy course (exported as its mean), the ``kept_fraction``
bookkeeping of discarding splits (exported as a parameter), and ``harvest`` markers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ciksim._version import __version__
from ciksim.errors import CikError
from ciksim.model import Model
from ciksim.model.model import ode_terms
from ciksim.protocol import Event, Protocol
from ciksim.units import convert, parse_unit, registry

_DIMENSIONS = {  # pint base dimension -> (SBML unit kind, factor to that kind)
    "[length]": ("metre", 1.0),
    "[mass]": ("gram", 1000.0),  # pint's base mass is the kilogram
    "[time]": ("second", 1.0),
    "[substance]": ("mole", 1.0),
    "[cell_count]": ("item", 1.0),
}


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


class _Units:
    """Unit definitions, one per distinct unit string."""

    def __init__(self, model) -> None:
        self.model = model
        self.ids: dict[str, str] = {}

    def id_for(self, text: str) -> str:
        if text in self.ids:
            return self.ids[text]
        libsbml = _libsbml()
        unit = parse_unit(text, field=f"unit {text!r}")
        q = registry().Quantity(1.0, unit).to_base_units()
        uid = f"u{len(self.ids)}_" + "".join(c if c.isalnum() else "_" for c in text)[:40]
        ud = self.model.createUnitDefinition()
        _check(ud.setId(uid), f"unit {text}")
        ud.setName(text)
        factor = float(q.magnitude)
        parts = []
        for dim, exp in q.dimensionality.items():
            if dim == "[biological_activity]":
                continue  # IU have no SBML unit kind: represented as dimensionless
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
        self.ids[text] = uid
        return uid


def _math(text: str, where: str):
    libsbml = _libsbml()
    ast = libsbml.parseL3Formula(text)
    if ast is None:
        raise CikError(f"SBML export: cannot write {where}: {libsbml.getLastParseL3Error()}")
    return ast


def to_sbml(model: Model, protocol: Protocol | None = None,
            parameters: Mapping[str, float] | None = None) -> str:
    """The model (and protocol events) as an SBML L3V2 string, validated by libsbml.

    ``parameters`` overrides default values (e.g. a protocol's seeding density).
    """
    libsbml = _libsbml()
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId(f"ciksim_{model.name}")
    m.setName(f"{model.name} (ciksim {__version__})")
    units = _Units(m)
    time_unit = units.id_for(model.time_unit)
    m.setTimeUnits(time_unit)
    comp = m.createCompartment()
    comp.setId("system")
    comp.setConstant(True)
    comp.setSize(1.0)
    comp.setSpatialDimensions(3)
    comp.setUnits(units.id_for("1"))
    m.setVolumeUnits(units.id_for("1"))
    values = model.default_parameters()
    if protocol is not None:
        values.update(protocol.parameter_values(model))
    values.update(parameters or {})
    for p in model.parameters:
        par = m.createParameter()
        par.setId(p.name)
        par.setName(p.description)
        par.setValue(float(values[p.name]))
        par.setUnits(units.id_for(p.unit))
        par.setConstant(True)
    kept = m.createParameter()
    kept.setId("kept_fraction")
    kept.setName("cumulative fraction of the culture kept through discarding splits")
    kept.setValue(1.0)
    kept.setUnits(units.id_for("1"))
    kept.setConstant(False)
    for s in model.species:
        sp = m.createSpecies()
        sp.setId(s.name)
        sp.setName(s.description)
        sp.setCompartment("system")
        sp.setHasOnlySubstanceUnits(True)
        sp.setBoundaryCondition(False)
        sp.setConstant(False)
        sp.setSubstanceUnits(units.id_for(s.unit))
        sp.setInitialAmount(0.0)
        ia = m.createInitialAssignment()
        ia.setSymbol(s.name)
        _check(ia.setMath(_math(model.expression("init:" + s.name).l3(),
                                f"initial value of {s.name}")), s.name)
    for a in model.assignments:
        par = m.createParameter()
        par.setId(a.name)
        par.setName(a.description)
        par.setUnits(units.id_for(a.unit))
        par.setConstant(False)
        rule = m.createAssignmentRule()
        rule.setVariable(a.name)
        _check(rule.setMath(_math(model.expression(a.name).l3(), a.name)), a.name)
    for s in model.species:
        terms = ode_terms(model, s.name)
        if not terms:
            continue
        formula = " + ".join(f"({c!r}) * ({model.expression(pr.name).l3()})"
                             for c, pr in terms)
        rule = m.createRateRule()
        rule.setVariable(s.name)
        _check(rule.setMath(_math(formula, f"rate of {s.name}")), s.name)
    if protocol is not None:
        for k, ev in enumerate(protocol.events):
            _event(m, model, ev, k, len(protocol.events), protocol.name)
    errors = validate(doc)
    if errors:
        raise CikError("SBML export produced invalid SBML:\n" + "\n".join(errors))
    return libsbml.writeSBMLToString(doc)


def validate(doc) -> list[str]:
    """libsbml consistency check; returns the messages of errors (not warnings)."""
    libsbml = _libsbml()
    doc.checkConsistency()
    out = []
    for i in range(doc.getNumErrors()):
        err = doc.getError(i)
        if err.getSeverity() >= libsbml.LIBSBML_SEV_ERROR:
            out.append(f"line {err.getLine()}: {err.getMessage().strip()}")
    return out


def _event(m, model: Model, ev: Event, k: int, total: int, proto: str) -> None:
    assignments = _event_assignments(model, ev, proto)
    if not assignments:
        return
    e = m.createEvent()
    e.setId(f"event_{k}_{ev.action}_day_{str(ev.day).replace('.', '_')}")
    e.setUseValuesFromTriggerTime(False)  # same-day events see the ones before them
    trig = e.createTrigger()
    trig.setInitialValue(False)
    trig.setPersistent(True)
    _check(trig.setMath(_math(f"time >= {float(ev.day)!r}", "trigger")), "trigger")
    prio = e.createPriority()
    _check(prio.setMath(_math(repr(float(total - k)), "priority")), "priority")
    for var, formula in assignments:
        ea = e.createEventAssignment()
        ea.setVariable(var)
        _check(ea.setMath(_math(formula, f"event {k} assignment to {var}")), var)


def _event_assignments(model: Model, ev: Event, proto: str) -> list[tuple[str, str]]:
    where = f"protocol {proto!r}, {ev.action} on day {ev.day:g}"
    if ev.action in ("set", "add"):
        out = []
        for name, value in ev.values.items():
            v = convert(value, model.species_by_name[name].unit, field=where)
            out.append((name, f"{name} + {v!r}" if ev.action == "add" else repr(v)))
        return out
    if ev.action == "harvest":
        return []
    if ev.action == "dose":
        decl = model.dose_by_name[str(ev.dose)]
        amount = repr(convert(ev.amount, decl.unit, field=where))
        out = []
        for sp in sorted(set(decl.adds) | set(decl.scales)):
            f = sp
            for kind in ("scales", "adds"):
                if sp in getattr(decl, kind):
                    term = model.expression(f"dose:{decl.name}:{kind}:{sp}").l3(
                        {"amount": amount})
                    f = f"{f} * ({term})" if kind == "scales" else f"{f} + ({term})"
            out.append((sp, f))
        return out
    vols = [s.name for s in model.species if s.kind == "volume"]
    cells = [c for c in model.with_role("cells") if c in model.species_by_name]
    if len(vols) != 1 or not cells:
        raise CikError(f"{where}: the model has no culture volume and cells")
    v = vols[0]
    unit = model.species_by_name[v].unit
    conc = [s for s in model.species if s.kind == "concentration"]
    top = {n: convert(x, model.species_by_name[n].unit, field=where)
           for n, x in ev.top_up.items()}

    def topped(name: str, formula: str) -> str:
        return f"max({formula}, {top[name]!r})" if name in top else formula

    total = " + ".join(cells)
    if ev.action == "feed":
        added = (f"{float(ev.volume_fraction)!r} * {v}" if ev.volume_fraction is not None
                 else repr(convert(ev.volume, unit, field=where)))
        out = [(v, f"{v} + {added}")]
        for s in conc:
            out.append((s.name, topped(s.name, f"({s.name} * {v} + {s.medium!r} * ({added}))"
                                                f" / ({v} + {added})")))
        return out
    dens = f"({model.species_by_name[cells[0]].unit})/({unit})"
    dmax = convert(ev.max_density, dens, field=where)
    dtarget = convert(ev.target_density, dens, field=where)
    hit = f"({total}) / {v} > {dmax!r}"
    if ev.cells == "keep":
        new_v = f"({total}) / {dtarget!r}"
        out = [(v, f"piecewise({new_v}, {hit}, {v})")]
        for s in conc:
            diluted = topped(s.name, f"({s.name} * {v} + {s.medium!r} * ({new_v} - {v})) / "
                                     f"({new_v})")
            out.append((s.name, f"piecewise({diluted}, {hit}, {s.name})"))
        return out
    frac = f"({dtarget!r} * {v} / ({total}))"
    out = [(c, f"piecewise({c} * {frac}, {hit}, {c})")
           for c in [s.name for s in model.species if s.kind == "amount"]]
    out.append(("kept_fraction", f"piecewise(kept_fraction * {frac}, {hit}, kept_fraction)"))
    for s in conc:
        mixed = topped(s.name, f"{s.name} * {frac} + {s.medium!r} * (1 - {frac})")
        out.append((s.name, f"piecewise({mixed}, {hit}, {s.name})"))
    return out


def write_sbml(model: Model, path: str | Path, protocol: Protocol | None = None,
               parameters: Mapping[str, float] | None = None) -> Path:
    """Write the SBML file atomically; returns its path."""
    import os

    text = to_sbml(model, protocol, parameters)
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p


__all__ = ["to_sbml", "validate", "write_sbml"]
