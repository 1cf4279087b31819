"""Deterministic engine: one ``simulate`` entry point for single runs and batches.

A batch of parameter sets (donors, patients) is one ODE system whose right-hand side is
vectorised over the batch (arrays of shape (n_species, n_batch)), so there is no Python loop
over donors. Integration is split at protocol events, which act on the state between
segments.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ciksim._version import __version__
from ciksim.engines.result import Result
from ciksim.errors import CikError, ModelError, ProtocolError, SimulationWarning
from ciksim.model import Model
from ciksim.model.model import parameter_matrix
from ciksim.protocol import Protocol


@dataclass(frozen=True)
class SolverSettings:
    """Integrator options. ``atol`` is relative to each species' initial magnitude."""

    method: str = "RK45"
    rtol: float = 1e-6
    atol: float = 1e-9
    max_step: float = np.inf

    def __post_init__(self) -> None:
        if self.method not in ("RK45", "RK23", "DOP853", "LSODA", "BDF", "Radau", "compiled"):
            raise ModelError(
                f"SolverSettings.method {self.method!r}: use a scipy solve_ivp method or "
                "'compiled' (numba, per-individual Dormand-Prince)"
            )
        if not (0 < self.rtol < 1 and self.atol > 0):
            raise ModelError("SolverSettings: need 0 < rtol < 1 and atol > 0")


def simulate(
    model: Model,
    protocol: Protocol | None = None,
    t_end: float | None = None,
    *,
    times: Sequence[float] | np.ndarray | None = None,
    parameters: Mapping[str, float | Sequence[float] | np.ndarray] | None = None,
    settings: SolverSettings | None = None,
    seed: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> Result:
    """Simulate ``model`` under ``protocol`` from time 0 to ``t_end``.

    Times are in the model's ``time_unit`` (days unless the model says hours).

    ``parameters`` overrides defaults; a 1-D array value makes a batch (all arrays the same
    length). ``times`` are the output times in days (default: every day). Output at an
    event's time is the state just after the event. ``seed`` is only recorded (this engine
    is deterministic) so results of stochastic wrappers carry it. ``progress(t)`` is told
    the time reached as the batch advances (from the solver's right-hand-side evaluations,
    about 200 times per run at most, and at each protocol event and the end); it only
    watches, so the numbers are the same with or without it.
    """
    protocol = protocol or Protocol(name="none")
    if protocol.triggers:  # monitoring acts per individual: the stochastic engines do it
        raise ProtocolError(f"protocol {protocol.name!r} has triggers, which the ODE engine "
                            "does not simulate; use simulate_stochastic, or drop the triggers")
    settings = settings or SolverSettings()
    if t_end is None:
        t_end = protocol.harvest_day
    if t_end is None or not np.isfinite(t_end) or t_end <= 0:
        raise CikError("t_end: give the simulated time in days (> 0)")
    overrides = dict(protocol.parameter_values(model))
    overrides.update(parameters or {})
    pmat = parameter_matrix(model, overrides)
    n = pmat.shape[1]
    out_t = np.arange(0.0, np.floor(t_end) + 1.0) if times is None else np.asarray(times, float)
    if out_t.ndim != 1 or out_t.size == 0 or np.any(np.diff(out_t) <= 0):
        raise CikError("times: give strictly increasing output times in days")
    if out_t[0] < 0 or out_t[-1] > t_end:
        raise CikError(f"times: output times must lie within [0, {t_end:g}] days")
    compiled = model.compiled
    y = compiled.initial(pmat).astype(float)
    if np.any(y < 0):
        bad = [model.species_names[i] for i in np.unique(np.nonzero(y < 0)[0])]
        raise ModelError(f"initial state: {', '.join(bad)} negative; check the parameters")
    events = [e for e in protocol.bind(model) if e.day <= t_end]
    ns = len(model.species)
    scale = _atol_scale(model, y) * settings.atol
    failed = np.zeros(n, dtype=bool)  # a batch goes on without individuals whose solve fails
    states = np.full((out_t.size, ns, n), np.nan)
    kept_out = np.ones((out_t.size, n))
    kept = np.ones(n)

    reached = 0.0  # the time last told to progress

    def tell(tt: float, every: float = t_end / 200) -> None:
        nonlocal reached
        if progress is not None and tt >= reached + every:
            reached = float(tt)
            progress(reached)

    # Patient-major layout: individuals are independent, so the Jacobian is block-diagonal
    # and banded (bandwidth ns - 1); implicit methods are told so instead of estimating a
    # dense (ns*n)^2 matrix.
    def solve(idx: np.ndarray, t0: float, t1: float, t_eval: np.ndarray
              ) -> tuple[np.ndarray | None, str]:
        """States (len(t_eval), ns, len(idx)) of individuals ``idx`` from ``y``, or None
        (and the solver's message) if the solve fails or leaves non-finite numbers."""
        from scipy.integrate import solve_ivp  # imported where used: fast start

        from ciksim.engines.threads import one_blas_thread

        k = idx.size
        p = pmat[:, idx]

        def rhs(tt: float, flat: np.ndarray) -> np.ndarray:
            tell(tt)
            return compiled.rhs(tt, flat.reshape(k, ns).T, p).T.ravel()

        # small linear algebra: more BLAS threads would only spin
        with np.errstate(all="ignore"), one_blas_thread():
            sol = solve_ivp(rhs, (t0, t1), y[:, idx].T.ravel(), method=settings.method,
                            t_eval=t_eval, rtol=settings.rtol, atol=np.tile(scale, k),
                            max_step=settings.max_step,
                            **_jacobian_structure(settings.method, ns, k))
        if sol.status != 0 or sol.y.shape[1] != t_eval.size or not np.isfinite(sol.y).all():
            return None, sol.message if sol.status != 0 else "non-finite state"
        return np.transpose(sol.y.reshape(k, ns, -1), (2, 1, 0)), ""

    # compiled: every individual has its own error control and tolerance scale, so a batch
    # gives exactly the numbers of its single runs
    atol_each = _atol_scale(model, y, each=True) * settings.atol \
        if settings.method == "compiled" else None
    h_each = np.zeros(n)  # compiled: each individual's step size, carried across segments

    def record(mask: np.ndarray, values: np.ndarray) -> None:
        states[mask] = values
        kept_out[mask] = kept

    t = 0.0
    stops = [*sorted({e.day for e in events}), t_end]
    for stop in stops:
        if stop > t and settings.method == "compiled":
            from ciksim.engines.compiled import integrate_segment

            sel = (out_t >= t) & (out_t < stop)
            traj = integrate_segment(model, y, pmat, t, stop, out_t[sel], settings.rtol,
                                     atol_each, h_each)
            if sel.any():
                record(sel, traj)
            t = stop
        elif stop > t:
            sel = (out_t >= t) & (out_t < stop)
            t_eval = np.append(out_t[sel], stop)
            alive = np.flatnonzero(~failed)
            traj = np.full((t_eval.size, ns, n), np.nan)
            part, message = solve(alive, t, stop, t_eval) if alive.size else (None, "")
            if part is not None:
                traj[:, :, alive] = part
            elif alive.size:  # one by one: a failing individual must not sink the batch
                for i in alive:
                    one, message = solve(np.array([i]), t, stop, t_eval)
                    if one is None:
                        failed[i] = True
                    else:
                        traj[:, :, i] = one[:, :, 0]
            if n == 1 and failed[0]:
                raise CikError(f"integration failed between day {t:g} and {stop:g}: "
                               f"{message}; try another solver method")
            if sel.any():
                record(sel, traj[:-1])
            y = traj[-1].copy()
            t = stop
        tell(t, every=0.0)
        for e in events:
            if e.day == stop:
                e.apply(y, kept, pmat)
    record(out_t == t, y[None, :, :])
    meta = {
        "ciksim_version": __version__,
        "model": model.name,
        "protocol": protocol.name,
        "t_end": float(t_end),
        "time_unit": model.time_unit,
        "seed": seed,
        "solver": {"method": settings.method, "rtol": settings.rtol, "atol": settings.atol},
        "batch_size": n,
        "failed": [int(i) for i in np.flatnonzero(failed)],
    }
    if failed.any():
        warnings.warn(f"{int(failed.sum())} of {n} individuals could not be integrated with "
                      f"{settings.method} (their states are NaN; Result.meta['failed'] lists "
                      "them); try another solver method", SimulationWarning, stacklevel=2)
    return Result(model=model, times=out_t, states=states, parameters=pmat, kept=kept_out,
                  protocol=protocol, meta=meta)


def _jacobian_structure(method: str, ns: int, n: int) -> dict[str, object]:
    if n == 1 or method not in ("LSODA", "BDF", "Radau"):
        return {}
    if method == "LSODA":
        return {"lband": ns - 1, "uband": ns - 1}
    from scipy.sparse import block_diag

    return {"jac_sparsity": block_diag([np.ones((ns, ns))] * n, format="csc")}


def _atol_scale(model: Model, y0: np.ndarray, each: bool = False) -> np.ndarray:
    """Absolute tolerance scale per species: its largest initial value over the batch, or,
    for species starting at zero, the largest initial value among species of its unit.
    ``each``: per individual instead (n_species, n), from its own initial values."""
    if each:
        own = np.abs(y0).astype(float)
    else:
        own = np.max(np.abs(y0), axis=1) if y0.size else np.zeros(len(model.species))
    scale = own.copy()
    by_unit: dict[str, list[int]] = {}
    for i, s in enumerate(model.species):
        by_unit.setdefault(s.unit, []).append(i)
    for idx in by_unit.values():
        group = np.max(own[idx], axis=0)
        scale[idx] = np.where(scale[idx] > 0, scale[idx], np.where(group > 0, group, 1.0))
    return scale
