"""Clinical evidence and the calibrated in vivo CIK effect.

Evidence is data (:func:`load_evidence`, :func:`cohort_study`); the effect is a few
identifiable parameters mapped onto the patient model (:mod:`ciksim.evidence.effect`).
"""

from ciksim.evidence.calibration import CalibrationResult, calibrate
from ciksim.evidence.posterior import Posterior
from ciksim.evidence.studies import (
    ENDPOINTS,
    Design,
    Evidence,
    Setting,
    Study,
    cohort_study,
    load_evidence,
    parse_evidence,
    read_cohort,
)

__all__ = ["ENDPOINTS", "CalibrationResult", "Design", "Evidence", "Posterior", "Setting",
           "Study", "calibrate", "cohort_study", "load_evidence", "parse_evidence",
           "read_cohort"]
