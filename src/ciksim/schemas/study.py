"""Schema of a study file: the design of a user's own cohort (``ciksim calibrate patient
--add-cohort FILE.csv --study FILE.toml``). One ``[study]`` record as an evidence file's
``[[studies]]`` entry, except what the cohort CSV gives: each arm's patients (``n``, times,
events) and the endpoint, a survival likelihood (``kind = "survival"``, follow-up by default
the cohort's longest). Fields and bounds are the evidence schema's
(:mod:`ciksim.evidence.studies`); its cross-field rules are checked when the study is built
(:func:`ciksim.evidence.studies.cohort_study`)."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, create_model

from ciksim.schemas.base import Schema, parse_toml, read_text, validate

#: Fields of an evidence arm that a cohort's CSV gives, not its study file.
FROM_CSV = ("n", "events", "times_months", "relapsed")


@cache
def study_file_schema() -> type[Schema]:
    """``[study]``: the evidence study's fields less the arms' patients and the endpoint's
    kind (survival); ``source`` optional (default: the cohort CSV's name)."""
    from ciksim.evidence.studies import Arm, Study

    def fields(model: Any, skip: tuple[str, ...]) -> dict[str, Any]:
        out = {}
        for k, f in model.model_fields.items():
            if k in skip:
                continue
            typ: Any = f.annotation
            if isinstance(typ, type) and issubclass(typ, StrEnum):
                typ = Annotated[typ, Strict(False)]  # given by name: the enum's value
            out[k] = (typ, f)
        return out

    arm = create_model("CohortArm", __base__=Schema,
                       __doc__="One arm, named as in the cohort CSV's arm column: product "
                               "and schedule for a treated arm, none for a control arm.",
                       **fields(Arm, FROM_CSV))
    endpoint = create_model("CohortEndpoint", __base__=Schema,
                            __doc__="A survival likelihood over the cohort's relapse times.",
                            kind=(Literal["survival"], "survival"),
                            at_months=(Annotated[float, Field(gt=0)] | None, None),
                            landmarks_months=(list[Annotated[float, Field(gt=0)]] | None,
                                              None))
    study = create_model("CohortStudy", __base__=Schema,
                         __doc__="The cohort's design (as an evidence study).",
                         source=(Annotated[str, Field(min_length=1)] | None, None),
                         endpoint=(endpoint | None, None),
                         arms=(Annotated[list[arm], Field(min_length=1, max_length=2)],
                               ...),
                         **fields(Study, ("source", "endpoint", "arms")))
    return create_model("StudyFile", __base__=Schema,
                        __doc__="The design of a user's cohort: one [study] record.",
                        study=(study, ...))


def read_study_file(path: str | Path, *, origin: str | None = None) -> dict[str, Any]:
    """The ``[study]`` record of a study file (a record at the top level is read as one),
    checked against :func:`study_file_schema`; a ``DataError`` names the field otherwise."""
    origin = origin or str(path)
    data = parse_toml(read_text(path, what="study file", origin=origin), origin=origin)
    if "study" not in data:
        data = {"study": data}
    validate(study_file_schema(), data, origin=origin)
    return dict(data["study"])


def check_study_file(path: str | Path, *, origin: str | None = None) -> Any:
    """A study file checked on its own, as far as it can be without its cohort: the schema,
    then the evidence study's rules (arms and design, product, schedule, population against
    the patient model) with one censored patient standing in for each arm's patients."""
    from ciksim.evidence.studies import design_study

    record = read_study_file(path, origin=origin)
    stand_in = {a["name"]: [(1.0, "censored")] for a in record["arms"]}
    return design_study(record, stand_in, origin=origin or str(path), cohort="the cohort CSV")
