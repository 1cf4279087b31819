"""Markdown rendering of a model declaration (equations and parameter table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ciksim.model.model import Model


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def model_markdown(model: Model) -> str:
    """Equations, species, assignments and parameters of ``model`` as Markdown tables."""
    from ciksim.model.model import ode_terms

    out = [f"## Model `{model.name}` (generated from its declaration)", "", model.description, ""]
    out += ["### State variables", "", "| name | unit | kind | initial value | roles | meaning |",
            "|---|---|---|---|---|---|"]
    for s in model.species:
        init = str(model.expression("init:" + s.name))
        out.append(f"| `{s.name}` | {s.unit} | {s.kind} | `{init}` | {', '.join(s.roles)} "
                   f"| {s.description} |")
    out += ["", f"### Differential equations (time in {model.time_unit}s)", ""]
    for s in model.species:
        terms = ode_terms(model, s.name)
        if not terms:
            rhs = "0 (changed only by protocol events)"
        else:
            parts = []
            for c, pr in terms:
                sign = "+" if c > 0 else "−"
                mag = "" if abs(c) == 1 else f"{abs(c):g}·"
                parts.append(f"{sign} {mag}{pr.name}")
            rhs = " ".join(parts).lstrip("+ ")
        out.append(f"- d`{s.name}`/dt = {rhs}")
    out += ["", "### Processes (rate laws)", "", "| process | rate | changes | meaning |",
            "|---|---|---|---|"]
    for pr in model.processes:
        ch = ", ".join(f"{k} {v:+g}" for k, v in pr.changes.items())
        out.append(f"| `{pr.name}` | `{model.expression(pr.name)}` | {ch} | {pr.description} |")
    if model.assignments:
        out += ["", "### Derived quantities", "", "| name | expression | unit | meaning |",
                "|---|---|---|---|"]
        for a in model.assignments:
            out.append(f"| `{a.name}` | `{model.expression(a.name)}` | {a.unit} | "
                       f"{a.description} |")
    if model.doses:
        out += ["", "### Doses (given by protocol `dose` events)", "",
                "| dose | amount unit | effect | meaning |", "|---|---|---|---|"]
        for d in model.doses:
            eff = [f"{sp} += `{model.expression(f'dose:{d.name}:adds:{sp}')}`" for sp in d.adds]
            eff += [f"{sp} ×= `{model.expression(f'dose:{d.name}:scales:{sp}')}`"
                    for sp in d.scales]
            out.append(f"| `{d.name}` | {d.unit} | {'; '.join(eff)} | {d.description} |")
    out += ["", "### Parameters", "",
            "| name | value | unit | plausible range | donor SD (log) | source | meaning |",
            "|---|---|---|---|---|---|---|"]
    for p in model.parameters:
        out.append(
            f"| `{p.name}` | {_fmt(p.value)} | {p.unit} | {_fmt(p.low)}–{_fmt(p.high)} | "
            f"{_fmt(p.variability)} | {p.source} | {p.description} |"
        )
    assumed = [p.name for p in model.parameters if p.assumed]
    if assumed:
        out += ["", "Assumed (no direct measurement; wide ranges): "
                + ", ".join(f"`{n}`" for n in assumed) + "."]
    return "\n".join(out) + "\n"
