"""Decision-report figures: a one-size assurance curve draws without pandas warnings (a
warning printed by a plot call used to land in `--json` output)."""

import warnings

import pandas as pd

from ciksim.report.decision import plot_assurance


def test_assurance_plot_of_one_sample_size_warns_nothing():
    curve = pd.DataFrame({"n_per_arm": [150], "assurance": [0.5], "ci_low": [0.4],
                          "ci_high": [0.6]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot_assurance(curve)
    (line,) = fig.axes[0].lines[:1]
    assert list(line.get_ydata()) == [0.5]
