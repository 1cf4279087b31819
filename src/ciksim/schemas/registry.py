"""The built-in input formats (each registered once; see :mod:`ciksim.schemas`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ciksim.schemas import Format, ProtocolSchema, register
from ciksim.schemas.scenario import scenario_schema, trial_schema
from ciksim.schemas.target import target_schema


def _protocol(path: Path) -> Any:
    """Read a culture protocol and bind it to the culture model (names, units, ranges)."""
    from ciksim.models.culture import culture_model
    from ciksim.protocol import Protocol

    proto = Protocol.load(path)
    proto.bind(culture_model())
    proto.parameter_values(culture_model())
    return proto


def _scenario(path: Path) -> Any:
    from ciksim.models.patient import Scenario

    return Scenario.load(path)


def _trial(path: Path) -> Any:
    from ciksim.trial.spec import TrialSpec

    return TrialSpec.load(path)


def _allo_trial(path: Path) -> Any:
    from ciksim.schemas import read_toml
    from ciksim.trial.allo import load_allo_spec

    return load_allo_spec(path, read_toml(path, what="allo trial spec"))


def _allo_trial_schema() -> Any:
    from ciksim.trial.allo import allo_trial_schema

    return allo_trial_schema()


def _donor(path: Path) -> Any:
    from ciksim.models.culture import Donor

    return Donor.load(path)


def _donor_schema() -> Any:
    from ciksim.schemas.donor import donor_schema

    return donor_schema()


def _target(path: Path) -> Any:
    from ciksim.analysis.killing import resolve_target

    return resolve_target(path)


def _lysis(path: Path) -> Any:
    from ciksim.assays.lysis import LysisData

    return LysisData.read_csv(path)


def _counts(path: Path) -> Any:
    from ciksim.inference.culture import CultureData

    return CultureData.read_csv(path)


def _cohort(path: Path) -> Any:
    from ciksim.schemas.cohort import read_cohort

    return read_cohort(path)


def _cohort_schema() -> Any:
    from ciksim.schemas.cohort import CohortRow

    return CohortRow


def _release(path: Path) -> Any:
    from ciksim.analysis.product import read_release_data

    return read_release_data(path)


def _release_schema() -> Any:
    from ciksim.analysis.product import ReleaseRow

    return ReleaseRow


def _study(path: Path) -> Any:
    from ciksim.schemas.study import check_study_file

    return check_study_file(path)


def _study_schema() -> Any:
    from ciksim.schemas.study import study_file_schema

    return study_file_schema()


def _evidence(path: Path) -> Any:
    from ciksim.evidence.studies import load_evidence

    return load_evidence(path)


def _evidence_schema() -> Any:
    from ciksim.evidence.studies import Evidence

    return Evidence


def _allo_evidence(path: Path) -> Any:
    from ciksim.evidence.allo_records import load_allo_evidence

    return load_allo_evidence(path)


def _allo_evidence_schema() -> Any:
    from ciksim.evidence.allo_records import AlloEvidence

    return AlloEvidence


def _lysis_schema() -> Any:
    from ciksim.assays.lysis import LysisRow

    return LysisRow


def _counts_schema() -> Any:
    from ciksim.inference.culture import CountsRow

    return CountsRow


register(Format(
    "protocol", "toml",
    "A culture protocol: timed events (set, add, feed, split, harvest, dose) and culture-model "
    "parameter settings (`ciksim culture --protocol FILE.toml`).",
    lambda: ProtocolSchema,
    '''name = "my-protocol"
harvest_day = 14

[parameters]
seed_density = "2e6 cells/mL"

[[events]]
day = 0
action = "set"
values = { IFNg = "1000 IU/mL" }

[[events]]
every = 3
from = 3
until = 12
action = "feed"
volume_fraction = 0.5
top_up = { IL2 = "300 IU/mL" }

[[events]]
day = 14
action = "harvest"
''', _protocol))

register(Format(
    "donor", "toml",
    "Starting material of a culture: whose cells are cultured, as culture-model parameter "
    "medians that donors are drawn around (`ciksim culture --donor FILE.toml`; built in: "
    "`healthy`, `patient-post-chemo`).",
    _donor_schema,
    '''name = "my-donor"
description = "leukapheresis of a patient in remission after consolidation"
source = "assumed: expansion measured as half of a healthy donor's in our lab"

[parameters]
donor_fitness = 0.5
''', _donor))

register(Format(
    "scenario", "toml",
    "A patient population: chemotherapy events, doses triggered by monitoring "
    "(`docs/triggers.md`), patient-model parameter medians and spreads, relapse threshold "
    "(`ciksim patient --scenario FILE.toml`, `[population] scenario`).",
    scenario_schema,
    '''name = "my-scenario"
relapse_threshold = 0.05

[parameters]
start_burden = 6e-4
weight = "80 kg"

[variability]
T_double = 0.3

[[events]]
days = [14, 49, 84]
action = "dose"
dose = "chemo"
amount = 1

[[triggers]]
name = "molecular-relapse"
watch = "npm1_ratio"
above = 0.01
monitor = { first = 120, every = 90, last = 720 }
doses = [ { offset = 0, dose = "chemo", amount = 1 } ]
''', _scenario))

register(Format(
    "trial", "toml",
    "A virtual trial: population, product, arms, size, follow-up, endpoint and seed "
    "(`ciksim trial FILE.toml`, `ciksim run FILE.toml`).",
    trial_schema,
    '''name = "my-trial"
seed = 1
patients_per_arm = 500
follow_up_years = 3
relapse = "haematologic"

[population]
scenario = "aml-cr1"

[product]
culture_protocol = "cik-gmp"
donors = 50

[[arms]]
name = "chemotherapy"

[[arms]]
name = "chemotherapy + CIK"
cik = { dose_per_kg = 5e7, infusions = 3, interval_days = 21, first_day = 30 }
''', _trial))

register(Format(
    "allo-trial", "toml",
    "A virtual trial after allogeneic stem-cell transplantation: an allo population (donor, "
    "conditioning, chimerism), arms giving donor cells (DLI or donor CIK by CD3+/kg, fixed "
    "or triggered), GRFS analysis (`ciksim trial FILE.toml`; `population.scenario` an allo "
    "scenario).",
    _allo_trial_schema,
    '''name = "my-allo-trial"
seed = 1
patients_per_arm = 100
follow_up_years = 2

[population]
scenario = "allo-aml-cr"
donor = "sibling"
conditioning = "ric"

[[arms]]
name = "DLI"
donor_cells = { cells = "dli", dose_per_kg = 1e7, first_day = 90 }

[[arms]]
name = "pre-emptive donor CIK"

[arms.donor_cells]
cells = "cik"
dose_per_kg = 1e7
infusions = 2
interval_days = 28

[arms.donor_cells.when]
watch = "mrd"
above = 1e-4
monitor = { first = 30, every = 30, last = 720 }

[analysis]
endpoint = "grfs"
grfs_agvhd = "III-IV"
''', _allo_trial))

register(Format(
    "target", "toml",
    "Target cells of a simulated cytotoxicity assay: the killing model's target properties "
    "(`ciksim killing --target FILE.toml`).",
    target_schema,
    '''name = "my-blasts"
description = "primary blasts of one patient"
recognition = ["nkg2d", "other"]
lig_frac = 0.5
lig_level = 0.8
s_other = 0.3
hla_i = 1.0
k_spont = 0.04
g_tgt = 0.0
''', _target))

register(Format(
    "lysis", "csv",
    "A release-assay plate (51Cr, LDH, calcein, flow), one row per well "
    "(`ciksim lysis FILE.csv`, `ciksim fit killing FILE.csv`).",
    _lysis_schema,
    '''effector,target,et_ratio,kind,replicate,value
,k562,,spontaneous,1,100
,k562,,spontaneous,2,140
,k562,,maximum,1,1100
,k562,,maximum,2,1140
cik,k562,10,experimental,1,620
cik,k562,10,experimental,2,720
cik,k562,5,experimental,1,320
cik,k562,5,experimental,2,420
''', _lysis))

register(Format(
    "counts", "csv",
    "A lab's own culture counts, one measurement per row (`ciksim fit culture FILE.csv`).",
    _counts_schema,
    '''donor,day,quantity,value,sd
A,0,total_cells,1e8,
A,7,total_cells,9e8,
A,14,total_cells,6e9,
A,14,cd3cd56_pct,22,3
''', _counts))

register(Format(
    "release", "csv",
    "Release data of manufactured CIK lots, one row per lot (trial spec `[product] "
    "release_data = FILE.csv`).",
    _release_schema,
    '''lot,cells,cd3cd56_pct,cd3_cd56neg_pct,nk_pct,viability_pct
L01,1.42e9,51,44,3,92
L02,0.42e9,40,54,4,85
''', _release))

register(Format(
    "cohort", "csv",
    "A user's own cohort for calibration, one row per patient: arm, follow-up in months "
    "since day 0 of the scenario (remission) and what ended it (relapse, death or censored); "
    "optional MRD columns named mrd... (fractions >= 0, checked, not yet used) "
    "(`ciksim calibrate patient --add-cohort FILE.csv --study TOML`; see docs/inference.md).",
    _cohort_schema,
    '''patient,arm,time_months,event,mrd_month_3
P01,cik,14.5,relapse,0.002
P02,cik,36,censored,
P03,control,8.2,relapse,0.01
P04,control,20.1,death,0
''', _cohort))

register(Format(
    "study", "toml",
    "The design of a user's own cohort: one [study] record as an evidence study, without "
    "what the cohort CSV gives (each arm's patients; the endpoint is survival) "
    "(`ciksim calibrate patient --add-cohort FILE.csv --study FILE.toml`; see "
    "docs/inference.md).",
    _study_schema,
    '''[study]
id = "my-cohort"
setting = "autologous-after-chemotherapy"
design = "randomised"

[study.population]
scenario = "aml-cr1"

[[study.arms]]
name = "cik"
product = { culture_protocol = "cik-gmp" }
dose_per_kg = 5e7
infusions = 3
interval_days = 21
first_day = 30

[[study.arms]]
name = "control"
''', _study))

register(Format(
    "evidence", "toml",
    "Clinical evidence for calibrating the in vivo effect: one [[studies]] record per study "
    "(`ciksim calibrate patient --evidence FILE.toml`; see docs/inference.md).",
    _evidence_schema,
    '''version = "example"
description = "one study record"

[[studies]]
id = "S18-dc-cik-mrd"
source = "clinical S18 (ASH 2013 abstract 1450, Shijiazhuang); clinical_more M10"
setting = "mrd-positive-in-cr"
design = "patient-choice"
notes = """Acute leukemia in haematological CR but MRD-positive; haploidentical family-donor \\
DC-CIK every 15 d x 4-6 with consolidation (24) vs consolidation alone (24). Molecular CR \\
45.8% vs 8.3% = 11/24 vs 2/24 (derived); flow-MRD negativity 66.7% vs 25.0% (16/24 vs \\
6/24) is the same patients and is not used twice. Assumed: dose 1e7 CD3+/kg per infusion \\
(not reported; low end of the leukemia CIK range, clinical S1, S5), 5 infusions from day \\
14, assessment at 4 months; population MRD at 1e-3 at entry (between the 1e-4 MRD and \\
1e-2 prognostic thresholds, clinical S22, S24) and chemoresistant (persistent MRD despite \\
chemotherapy: log-kill at the declared lower bound 0.3 per course)."""

[studies.population]
scenario = "aml-cr1"
start_burden = 1e-3
parameters = { logkill_L = 0.3 }

[studies.endpoint]
kind = "mrd_negative"
at_months = 4.0

[[studies.arms]]
name = "dc-cik"
n = 24
events = 11
product = { culture_protocol = "cik-standard", days = 21, origin = "donor" }
dose_per_kg = 1e7
infusions = 5
interval_days = 15
first_day = 14

[[studies.arms]]
name = "consolidation"
n = 24
events = 2
''', _evidence))

register(Format(
    "allo-evidence", "toml",
    "Clinical evidence for calibrating the alloreactivity of the post-transplant model: one "
    "[[studies]] record per study (setting `donor-after-allo-hsct`), an allo population, an "
    "endpoint counted from each patient's first infusion and up to three arms of donor cells "
    "(`ciksim calibrate allo --evidence FILE.toml`; shipped: `data/evidence/allo.toml`; see "
    "docs/inference.md). Each used study is checked against the allo model (scenario, donor, "
    "conditioning, parameter ranges, schedule) before any simulation.",
    _allo_evidence_schema,
    '''version = "example"
description = "one study record"

[[studies]]
id = "A3-introna-2007-cik"
source = "clinical S1, S1b (Introna 2007, Haematologica 92:952); target A3"
setting = "donor-after-allo-hsct"
design = "single-arm"
notes = """Donor CIK for relapse after allo-HSCT: acute GvHD 4/11. Assumed: 2 infusions of \\
6.2e6 CD3+/kg 21 days apart from day 180, acute GvHD of any grade within 6 months."""

[studies.endpoint]
kind = "agvhd"
at_months = 6.0

[[studies.arms]]
name = "donor-cik"
n = 11
events = 4
cells = "cik"
dose_per_kg = 6.2e6
infusions = 2
interval_days = 21
first_day = 180
screen = 2
''', _allo_evidence))
