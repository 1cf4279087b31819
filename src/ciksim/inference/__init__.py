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
#: as burn-in: the 3,750 kept steps span the 50 autocorrelation times emcee asks for
#: (``ciksim.inference.culture.MIN_AUTOCORR``) up to 75 steps; the default fit's are ~60-70
#: (three simulated donors: 59 on 3,000 kept steps; 59 and 70 on 4,500), the 1,250 burn-in
#: steps ~20 of them.
FIT_STEPS = 5000
