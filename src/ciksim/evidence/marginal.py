"""The bias and offset terms integrated out of the ABC acceptance, per simulated study set.

A study's bias and offset terms (:mod:`ciksim.evidence.effect`) only shift its simulated
summaries: on the log-odds scale for proportions, on the log scale for a hazard ratio. With
two-arm studies there are as many such terms as summaries, so for any simulated study set
some value of the terms matches the observations exactly, and the terms' posterior given
the effect parameters is a thin, curved ridge. Sampling them jointly with the effect by
ABC-SMC (one draw of every term per simulated study set, proposals from a multivariate
normal kernel over all coordinates) accepted few proposals near that ridge and gave
degenerate final populations (issue 11: effective sample sizes of 4-14 of 100 particles,
over-confident 90% intervals).

Here pyabc samples only the effect parameters. For each simulated study set ``x`` the
terms are integrated out by importance sampling: ``M`` draws ``b`` from a proposal ``g``
(the terms' Gaussian posterior under the summaries' linearised acceptance region, widened,
mixed with the prior) estimate the probability, under the terms' prior, that the shifted
summaries lie within the tolerance::

    p(x) = mean over draws of prior(b) / g(b) * [distance(x shifted by b) <= eps]

an unbiased estimate of the ABC acceptance probability given ``x`` with the terms
marginalised. The particle is accepted when ``p > 0`` with ``p`` as its acceptance weight
(pyabc multiplies it into the importance weight), so the weighted population targets the
same ABC posterior as the joint sampler, with the effect's kernel working in two or three
dimensions. One draw among the accepted ones (chosen with probability proportional to
``prior / g``) is kept with the particle (stored with its summaries), which makes the kept
terms a draw from their joint posterior with the effect: their posteriors are reported
as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyabc
from scipy.special import expit, logit

from ciksim.evidence.effect import Dimension
from ciksim.evidence.simulate import Observed

#: Importance draws of the terms per simulated study set. The estimate p is unbiased for
#: any number of draws; the number sets only its noise, which multiplies into the
#: particle's weight and costs effective sample size by a factor 1 / (1 + cv^2) (cv: the
#: coefficient of variation of p). Measured on the shipped evidence (5 terms; 4 study sets
#: simulated at the shipped posterior's medians, eps = sqrt(5), 300 estimates each): cv
#: 0.10-0.26 at 512 draws, i.e. at most 6% of the effective sample size, for 0.2 CPU ms
#: per simulated study set against ~30 ms to simulate it; 128 draws double cv, 2048 halve
#: it at 2.7 times the cost; the mean p agreed within 3% across 128-2048 draws.
TERM_DRAWS = 512
#: Share of the terms' prior in the importance proposal: a defensive mixture (Hesterberg
#: 1995) that bounds prior / g by 1 / PRIOR_SHARE = 10, so p stays in [0, 10] with a
#: variance under 10 p / TERM_DRAWS however badly the Gaussian part misses the acceptance
#: region (curved log-odds map, a ball rather than a Gaussian), at the price of 10% of the
#: draws where the Gaussian part is good. The prior draws are round(PRIOR_SHARE x draws) (51
#: of 512) while the density uses PRIOR_SHARE: the estimate's bias is under |0.1 - 51/512|
#: / 0.1 = 0.4% of p, and a constant factor for every particle is no bias at all.
PRIOR_SHARE = 0.1
#: Widening of the linearised posterior's SD in the proposal. The linearisation treats the
#: acceptance ball of radius eps as a Gaussian with SD eps / sqrt(k) per summary, but the
#: ball reaches eps along one summary, sqrt(k) of those SDs; widened by 1.5 its edge lies
#: within sqrt(k) / 1.5 proposal SDs (1.5 for the shipped evidence's k = 5 summaries), so
#: the Gaussian part covers the region and the prior part the rest.
WIDEN = 1.5
TERM_KEY = "term:"  # prefix of a kept term in a particle's summaries


@dataclass(frozen=True)
class TermModel:
    """How the study terms ``b`` shift the observed summaries: summary ``k`` is
    ``expit(logit(raw_k) + A[k] @ b)`` when ``logodds[k]`` (a proportion), otherwise
    ``raw_k + A[k] @ b``. ``mean``/``sd``: the terms' normal priors."""

    names: tuple[str, ...]  # the terms (coordinate names)
    summaries: tuple[str, ...]  # the observed summaries, in order
    A: np.ndarray  # (summaries, terms) 0/1
    logodds: np.ndarray  # (summaries,) bool
    mean: np.ndarray
    sd: np.ndarray
    observed: np.ndarray
    se: np.ndarray
    #: What the proposal needs that depends on the tolerance only (:meth:`at`), per eps.
    _by_eps: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def scale(self) -> np.ndarray:
        """Each summary's SE on the shifted scale (log-odds or log), at the observation."""
        o = np.where(self.logodds, self.observed, 0.5)  # (a log HR may be 0)
        return np.where(self.logodds, self.se / (o * (1 - o)), self.se)

    def linear(self, values: np.ndarray) -> np.ndarray:
        return np.where(self.logodds, logit(np.clip(values, 1e-12, 1 - 1e-12)), values)

    def shifted(self, raw: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Summaries of raw values ``raw`` (k,) under term draws ``b`` (M, terms)."""
        z = self.linear(raw)[None, :] + b @ self.A.T
        return np.where(self.logodds[None, :], expit(z), z)

    def distances(self, raw: np.ndarray, b: np.ndarray) -> np.ndarray:
        s = self.shifted(raw, b)
        return np.sqrt((((s - self.observed[None, :]) / self.se[None, :]) ** 2).sum(axis=1))

    def at(self, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """At tolerance ``eps``: each summary's weight in the linearised acceptance region
        (each squared standardised error ~ eps^2 / k), the covariance of the terms'
        Gaussian posterior under it, and the Cholesky factor of that covariance widened by
        :data:`WIDEN`. They depend on the tolerance only, so they are computed once per
        tolerance (a generation's) instead of once per simulated study set."""
        key = float(eps)
        known = self._by_eps.get(key)
        if known is None:
            k = len(self.summaries)
            w = k / (np.maximum(key, 1e-6) ** 2 * self.scale ** 2)
            precision = np.diag(1 / self.sd ** 2) + self.A.T @ (w[:, None] * self.A)
            cov = np.linalg.inv(precision)
            known = (w, cov, np.linalg.cholesky(cov * WIDEN ** 2))
            self._by_eps[key] = known
        return known

    def proposal(self, raw: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the terms' Gaussian posterior given ``raw`` under the
        linearised acceptance region (:meth:`at`), before widening."""
        w, cov, _ = self.at(eps)
        target = self.linear(self.observed) - self.linear(raw)
        mean = cov @ (self.mean / self.sd ** 2 + self.A.T @ (w * target))
        return mean, cov

    def best(self, raw: np.ndarray, eps: float) -> float:
        """Distance at the proposal's mean (deterministic: pyabc's calibration sample);
        infinite when a simulated summary is NaN or infinite (as
        :func:`ciksim.evidence.simulate.distance`)."""
        if not np.all(np.isfinite(raw)):
            return math.inf
        mean, _ = self.proposal(raw, eps)
        return float(self.distances(raw, mean[None, :])[0])


def term_model(dims: Sequence[Dimension], summaries: Sequence[str],
               shifts: Mapping[str, Sequence[str]], logodds: Sequence[bool],
               observed: Mapping[str, Observed]) -> TermModel | None:
    """The :class:`TermModel` of the bias/offset coordinates in ``dims`` (None: none);
    ``shifts[summary]`` names the terms that shift it."""
    terms = [d for d in dims if d.kind != "effect"]
    if not terms:
        return None
    col = {d.name: j for j, d in enumerate(terms)}
    A = np.zeros((len(summaries), len(terms)))
    for i, s in enumerate(summaries):
        for name in shifts.get(s, ()):
            if name in col:  # a term the study has (a randomised study has no bias)
                A[i, col[name]] = 1.0
    return TermModel(tuple(d.name for d in terms), tuple(summaries), A,
                     np.asarray(logodds, bool), np.array([d.a for d in terms]),
                     np.array([d.b for d in terms]),
                     np.array([observed[s].value for s in summaries]),
                     np.array([observed[s].se for s in summaries]))


def _log_normal_pdf(b: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """Log density of N(mean, chol chol^T) at the rows of ``b``."""
    z = np.linalg.solve(chol, (b - mean).T)
    return (-0.5 * (z ** 2).sum(axis=0) - np.log(np.diag(chol)).sum()
            - 0.5 * len(mean) * math.log(2 * math.pi))


class MarginalAcceptor(pyabc.acceptor.Acceptor):
    """Accepts a simulated study set with weight p (module docstring), drawing the terms
    from numpy's global generator (seeded per proposal by the ordered sampler). A study
    set with a NaN or infinite summary (no value to shift, e.g. an arm without eligible
    patients) is rejected at an infinite distance (as
    :func:`ciksim.evidence.simulate.distance`)."""

    def __init__(self, model: TermModel, draws: int = TERM_DRAWS) -> None:
        super().__init__()
        self.model = model
        self.draws = int(draws)

    def __call__(self, distance_function, eps, x, x_0, t, par):
        m = self.model
        e = float(eps(t))
        raw = np.array([x[s] for s in m.summaries], float)
        if not np.all(np.isfinite(raw)):
            return pyabc.acceptor.AcceptorResult(math.inf, False, 0.0)
        mean, _ = m.proposal(raw, e)
        chol = m.at(e)[2]
        prior_chol = np.diag(m.sd)
        n_prior = round(PRIOR_SHARE * self.draws)
        z = np.random.standard_normal((self.draws, len(m.names)))
        b = np.empty_like(z)
        b[:n_prior] = m.mean + z[:n_prior] * m.sd
        b[n_prior:] = mean + z[n_prior:] @ chol.T
        log_prior = _log_normal_pdf(b, m.mean, prior_chol)
        log_g = np.logaddexp(math.log(PRIOR_SHARE) + log_prior,
                             math.log(1 - PRIOR_SHARE) + _log_normal_pdf(b, mean, chol))
        ratio = np.exp(log_prior - log_g)
        d = m.distances(raw, b)
        hit = d <= e
        p = float((ratio * hit).mean())
        if p <= 0:
            return pyabc.acceptor.AcceptorResult(float(d.min()), False, 0.0)
        w = np.where(hit, ratio, 0.0)
        j = int(np.random.choice(len(w), p=w / w.sum()))
        for name, value in zip(m.names, b[j], strict=True):
            x[TERM_KEY + name] = float(value)
        return pyabc.acceptor.AcceptorResult(float(d[j]), True, p)


def kept_terms(sum_stats: Sequence[Mapping[str, float]], names: Sequence[str]
               ) -> dict[str, np.ndarray]:
    """The terms kept with each accepted particle (in the particles' order)."""
    return {n: np.array([s[TERM_KEY + n] for s in sum_stats], float) for n in names}
