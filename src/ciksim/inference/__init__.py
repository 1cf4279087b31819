"""Calibration of model parameters to a user's own data, with uncertainty.

The culture fit's default ensemble is declared here, in a module that imports nothing, so
that the faces (the CLI's option defaults, the web page's inputs) read the same numbers as
:func:`ciksim.inference.culture.fit_culture` without loading the model.
"""

#: MCMC walkers of a culture fit: at least twice the sampled dimensions (emcee's rule); the
#: default fit samples 12 (3 fitted + 9 marginalised donor-varying parameters), so 24 is
#: the minimum and 32 leaves room for one or two more fitted parameters.
FIT_WALKERS = 32
#: MCMC steps per walker of a culture fit, the first quarter (``FIT_STEPS // 4``) discarded
#: as burn-in: 1,500 kept steps are ~25-37 autocorrelation times at the default fit's
#: 40-60 steps (see ``ciksim.inference.culture.MIN_AUTOCORR``).
FIT_STEPS = 2000
