"""Virtual clinical trials: specification, chunked runner (local or Dask), analysis."""

from ciksim.trial.spec import Arm, TrialSpec

__all__ = ["Arm", "TrialSpec"]
