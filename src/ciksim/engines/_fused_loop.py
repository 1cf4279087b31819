# ruff: noqa: F821
"""The per-individual step loop of the compiled stochastic engine (source text, not imported).

``ciksim.engines.fused`` copies this file's text after the functions it generates from a
model (``_pre``, ``_rhs_det``, ``_rates``, ``_watch``, ``_trig``; the names ruff cannot see
here) and compiles the result with numba, so the loop and the model's code are compiled
together and cached on disk. It repeats, for one individual, exactly the steps of the numpy
reference engine (``ciksim.engines.stochastic``), drawing its random numbers in the same
order.
"""


@njit(cache=True, error_model="numpy")
def _rk4(t, h, y, p, q, k1, k2, k3, k4, yt):
    ns = y.size
    _rhs_det(t, y, p, q, k1)
    for s in range(ns):
        yt[s] = y[s] + h / 2 * k1[s]
    _rhs_det(t + h / 2, yt, p, q, k2)
    for s in range(ns):
        yt[s] = y[s] + h / 2 * k2[s]
    _rhs_det(t + h / 2, yt, p, q, k3)
    for s in range(ns):
        yt[s] = y[s] + h * k3[s]
    _rhs_det(t + h, yt, p, q, k4)
    for s in range(ns):
        v = y[s] + h / 6 * (k1[s] + 2 * k2[s] + 2 * k3[s] + k4[s])
        y[s] = v if (v >= 0.0 or v != v) else 0.0


@njit(cache=True, error_model="numpy")
def _events(k, e, y, i, ev_k, ev_sp, ev_kind, ev_val, is_stoch, s):
    """Apply the event operations of grid point ``k`` from position ``e``; returns the next."""
    while e < ev_k.size and ev_k[e] < k:
        e += 1
    while e < ev_k.size and ev_k[e] == k:
        sp = ev_sp[e]
        v = ev_val[e, i]
        if ev_kind[e] == 0:
            if is_stoch[sp]:
                y[sp] = binomial(y[sp], v, s)
            else:
                y[sp] *= v
        else:
            y[sp] += v
        e += 1
    return e


@njit(cache=True, error_model="numpy")
def _give(op0, op1, y, i, o_sp, o_kind, o_val, is_stoch, s):
    """Apply the triggered-dose operations ``op0:op1`` to individual ``i``."""
    for o in range(op0, op1):
        sp = o_sp[o]
        v = o_val[i, o]
        if o_kind[o] == 0:
            if is_stoch[sp]:
                y[sp] = binomial(y[sp], v, s)
            else:
                y[sp] *= v
        else:
            y[sp] += v


@njit(cache=True, error_model="numpy")
def _triggers(k, t, y, p, q, i, vals, fired, nxt, tday, up, thr, v_ptr, v_k, v_dose, o_ptr,
              o_sp, o_kind, o_val, is_stoch, s):
    """At grid point ``k``: evaluate the triggers monitored there (all on the same state),
    then give the triggered doses due; returns True if one fired."""
    nt = v_ptr.size - 1
    nd = v_dose.shape[1]
    due = False
    for j in range(nt):
        while nxt[j] < v_ptr[j + 1] and v_k[nxt[j]] < k:
            nxt[j] += 1
        if fired[j] < 0 and nxt[j] < v_ptr[j + 1] and v_k[nxt[j]] == k:
            due = True
    changed = False
    if due:
        _trig(t, y, p, q, vals)
        for j in range(nt):
            if fired[j] < 0 and nxt[j] < v_ptr[j + 1] and v_k[nxt[j]] == k:
                v = vals[j]
                if (v >= thr[j]) if up[j] else (v <= thr[j]):
                    fired[j] = nxt[j]
                    tday[j] = t
                    changed = True
    for j in range(nt):
        if fired[j] >= 0:
            for d in range(nd):
                if v_dose[fired[j], d] == k:
                    _give(o_ptr[j * nd + d], o_ptr[j * nd + d + 1], y, i, o_sp, o_kind,
                          o_val, is_stoch, s)
    return changed


@njit(cache=True, error_model="numpy")
def _settle(last_event, fired, v_ptr, v_end, last_visit):
    """The time from which the individual's fate is settled (see ``TriggerPlan``)."""
    out = last_event
    for j in range(v_ptr.size - 1):
        end = v_end[fired[j]] if fired[j] >= 0 else last_visit[j]
        out = max(out, end)
    return out


@njit(cache=True, error_model="numpy")
def _next_point(grid, k, fired, v_dose, next_must, fixed_window, dt_event, dt_max, window):
    """The grid index the individual steps to from ``k`` (``TriggerPlan.next_point``)."""
    t = grid[k]
    own = fixed_window[k]
    stop = next_must[k]
    for j in range(fired.size):
        if fired[j] >= 0:
            for d in range(v_dose.shape[1]):
                dk = v_dose[fired[j], d]
                if dk >= 0:
                    if dk > k and dk < stop:
                        stop = dk
                    dd = grid[dk]
                    if dd - 1e-9 <= t and t < dd + window - 1e-9:
                        own = True
    h = dt_event if own else dt_max
    kk = k + 1
    while kk < stop and kk + 1 < grid.size and grid[kk + 1] - t <= h + 1e-9:
        kk += 1
    return kk


@njit(cache=True, error_model="numpy")
def _per_cell(t, y, p, q, r, r1, y1, cells, safe, lam, mu, nu, sidx, owner, b_ptr, d_ptr,
              t_src, n_birth_death):
    """Rates at the step midpoint turned into per-cell rates; False if one is negative."""
    nk = sidx.size
    _rates(t, y, p, q, r)
    empty = 0
    for c in range(nk):
        cells[c] = y[sidx[c]]
        safe[c] = cells[c] if cells[c] > 0 else 1.0
        if cells[c] == 0:
            empty += 1
    if t_src.size > 0 and 0 < empty < nk:
        for s in range(y.size):
            y1[s] = y[s]
        for c in range(nk):
            if cells[c] == 0:
                y1[sidx[c]] = 1.0
        _rates(t, y1, p, q, r1)
        for j in range(r.size):
            if cells[owner[j]] == 0:
                r[j] = r1[j]
    ok = True
    for c in range(nk):
        b = 0.0
        for j in range(b_ptr[c], b_ptr[c + 1]):
            b = r[j] if j == b_ptr[c] else b + r[j]
        d = 0.0
        for j in range(d_ptr[c], d_ptr[c + 1]):
            d = r[j] if j == d_ptr[c] else d + r[j]
        lam[c] = b / safe[c] if b_ptr[c + 1] > b_ptr[c] else 0.0
        mu[c] = d / safe[c] if d_ptr[c + 1] > d_ptr[c] else 0.0
        if lam[c] < 0 or mu[c] < 0:
            ok = False
    for j in range(t_src.size):
        nu[j] = r[n_birth_death + j] / safe[t_src[j]]
        if nu[j] < 0:
            ok = False
    return ok


@njit(parallel=True, cache=True, error_model="numpy")
def simulate_all(Y0, P, grid, ev_k, ev_sp, ev_kind, ev_val, sidx, is_stoch, owner, b_ptr,
                 d_ptr, t_src, t_dst, t_order, t_rorder, watch_on, threshold, track_on,
                 stop_after_crossing, last_event, record, up, thr, v_ptr, v_k, v_end, v_dose,
                 last_visit, o_ptr, o_sp, o_kind, o_val, next_must, fixed_window, dt_event,
                 dt_max, window, states, final, ext_t, cross_t, minimum, err_t, traj,
                 trig_day):
    """Every individual (rows of Y0, P, states) from grid[0] to grid[-1]; outputs in place."""
    n, ns = Y0.shape
    nt = v_ptr.size - 1
    nk = sidx.size
    nr = owner.size
    n_bd = nr - t_src.size
    for i in prange(n):
        s = states[i]
        y = Y0[i].copy()
        p = P[i]
        q = np.empty(NQ)
        _pre(p, q)
        k1 = np.zeros(ns)
        k2 = np.zeros(ns)
        k3 = np.zeros(ns)
        k4 = np.zeros(ns)
        yt = np.empty(ns)
        y1 = np.empty(ns)
        r = np.empty(nr)
        r1 = np.empty(nr)
        cells = np.empty(nk)
        safe = np.empty(nk)
        lam = np.empty(nk)
        mu = np.empty(nk)
        nu = np.empty(t_src.size)
        ext = np.nan
        cross = np.nan
        low = np.inf
        armed = False  # been below the threshold: a crossing is upward
        prev = 0.0
        vals = np.empty(max(nt, 1))
        fired = np.full(max(nt, 1), -1, dtype=np.int64)
        nxt = v_ptr[:-1].copy() if nt > 0 else np.zeros(1, dtype=np.int64)
        tday = np.full(max(nt, 1), np.nan)
        settle = _settle(last_event, fired, v_ptr, v_end, last_visit)
        e = _events(0, 0, y, i, ev_k, ev_sp, ev_kind, ev_val, is_stoch, s)
        pos = 0  # the grid index last stepped to
        target = 1  # the one stepped to next
        for k in range(grid.size):
            t1 = grid[k]
            if k > 0:
                if k < target:  # stepped over: a recorded trajectory holds the state
                    if record:
                        for sp in range(ns):
                            traj[k, sp, i] = y[sp]
                    continue
                t0 = grid[pos]
                h = t1 - t0
                _rk4(t0, h / 2, y, p, q, k1, k2, k3, k4, yt)
                if not _per_cell(t0 + h / 2, y, p, q, r, r1, y1, cells, safe, lam, mu, nu,
                                 sidx, owner, b_ptr, d_ptr, t_src, n_bd):
                    err_t[i] = t0
                    break
                transfer_step(cells, nu, t_src, t_dst, t_order, h / 2, s)
                for c in range(nk):
                    cells[c] = kendall_step(cells[c], lam[c], mu[c], h, s)
                transfer_step(cells, nu, t_src, t_dst, t_rorder, h / 2, s)
                for c in range(nk):
                    y[sidx[c]] = cells[c]
                _rk4(t0 + h / 2, h / 2, y, p, q, k1, k2, k3, k4, yt)
                e = _events(k, e, y, i, ev_k, ev_sp, ev_kind, ev_val, is_stoch, s)
            if nt > 0 and _triggers(k, t1, y, p, q, i, vals, fired, nxt, tday, up, thr, v_ptr,
                                    v_k, v_dose, o_ptr, o_sp, o_kind, o_val, is_stoch, s):
                settle = _settle(last_event, fired, v_ptr, v_end, last_visit)
            cur, tracked = _watch(t1, y, p, q)
            if track_on and low == low and cross != cross:  # the nadir up to the crossing
                low = tracked if (tracked < low or tracked != tracked) else low
            total = 0.0
            for c in range(nk):
                total += y[sidx[c]]
            if total == 0 and ext != ext:
                ext = t1
            if watch_on:
                if cur >= threshold and cross != cross and not armed and t1 >= settle:
                    cross = grid[0]  # never below: a failure from the start
                if cur >= threshold and cross != cross and armed:
                    if k > 0:
                        frac = ((np.log(threshold) - np.log(prev))
                                / (np.log(cur) - np.log(prev)))
                        frac = min(max(frac, 0.0), 1.0) if np.isfinite(frac) else 1.0
                        cross = grid[pos] + frac * (t1 - grid[pos])
                    else:
                        cross = t1
                if cur < threshold:
                    armed = True
                prev = cur
            if record:
                for sp in range(ns):
                    traj[k, sp, i] = y[sp]
            if k > 0 and ((stop_after_crossing and cross == cross)
                          or (not record and t1 >= settle and ext == ext)):
                break
            pos = k
            target = _next_point(grid, k, fired, v_dose, next_must, fixed_window, dt_event,
                                 dt_max, window)
        for sp in range(ns):
            final[i, sp] = y[sp]
        for j in range(nt):
            trig_day[i, j] = tday[j]
        ext_t[i] = ext
        cross_t[i] = cross
        minimum[i] = low
