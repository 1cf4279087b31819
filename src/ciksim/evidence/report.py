"""The calibration's HTML report: priors and posteriors, the check of every study."""

from __future__ import annotations

from ciksim.evidence.posterior import Posterior


def calibration_report(posterior: Posterior) -> str:
    """One self-contained HTML page for a calibrated posterior."""
    from ciksim.report.html import Report
    from ciksim.report.plots import pyplot

    m = posterior.manifest
    title = ("Calibration of the alloreactivity after allo-HSCT" if m.get("model") == "allo"
             else "Calibration of the in vivo CIK effect")
    rep = Report(title)
    rep.paragraph(f"Evidence version {m.get('evidence_version')} (hash "
                  f"{m.get('evidence_hash')}); studies: {', '.join(m.get('studies', []))}; "
                  f"seed {m.get('seed')}; {m.get('particles')} particles x "
                  f"{m.get('generations')} generations; {m.get('evaluations')} simulated "
                  f"study sets; ciksim {m.get('package_version')}, pyabc "
                  f"{m.get('pyabc_version')}.", note=True)
    rep.heading("Parameters: posterior vs prior")
    rep.paragraph("Median and 90% credible interval of each coordinate, the prior's 90% "
                  "interval, and the width ratio (posterior / prior 90% width, log scale for "
                  "log-uniform priors; below 1: the evidence narrowed it). Bias terms shift "
                  "a non-randomised comparison; offsets shift a study population's baseline.")
    rep.table(posterior.summary())
    fig = posterior.plot()
    rep.figure(fig, "Prior (line) and posterior (histogram) of every coordinate")
    pyplot().close(fig)
    rep.heading("Posterior-predictive check, per study")
    rep.paragraph("Each study re-simulated with its own design at posterior draws (bias terms "
                  "included): the observed summary against the 90% interval of the simulated "
                  "study.")
    rep.table(posterior.ppc)
    ax = posterior.plot_ppc()
    rep.figure(ax.figure, "Observed (dots) vs simulated 90% interval (bars)")
    pyplot().close(ax.figure)
    rep.heading("What this posterior cannot say")
    proxy = ("Proxy studies (DLI in other diseases) inform the alloreactivity only through "
             "the shared mechanism. " if m.get("model") == "allo" else
             "Proxy studies (NK products) inform the CIK effect only through the shared "
             "mechanism. ")
    rep.paragraph(f"It is conditional on the {m.get('model', 'patient')} model and on the "
                  "assumptions recorded in each study's notes (doses, schedules, populations "
                  f"not reported by the sources). {proxy}Parameters whose width ratio is "
                  "near 1 are not informed by the evidence and carry their prior.")
    return rep.render()
