"""SED-ML (Level 1 Version 3, python-libsedml) and COMBINE archives (python-libcombine).

The simulation experiment of a :class:`~ciksim.exchange.export.ModelExport`: one uniform
time course from 0 to the run's end on its output grid (CVODE, KiSAO:0000019, with tight
tolerances), a report of time and the run's outputs, and a plot of them. Tools that execute
SED-ML (tellurium, COPASI, BioSimulators) reproduce the ciksim run from the archive alone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ciksim._version import __version__
from ciksim.engines.sbml import is_species
from ciksim.errors import CikError

if TYPE_CHECKING:
    from ciksim.exchange.export import ModelExport

SBML_LANGUAGE = "urn:sedml:language:sbml.level-3.version-2"
CVODE = "KISAO:0000019"
TOLERANCES = {"KISAO:0000209": "1e-10", "KISAO:0000211": "1e-12"}  # relative, absolute
MODEL_FILE = "model.xml"
SEDML_FILE = "simulation.sedml"


def _lib(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        package = {"libsedml": "python-libsedml", "libcombine": "python-libcombine"}[name]
        raise CikError(f"COMBINE export needs {package}: pip install {package} (or "
                       "pip install 'ciksim[interop]')") from exc


def _ok(code: int, what: str) -> None:
    if code != 0:
        raise CikError(f"SED-ML export failed at {what} (libsedml code {code})")


def _target(exp: ModelExport, name: str) -> str:
    decl = exp.model.species_by_name.get(name)
    if decl is not None and is_species(decl.unit):
        return f"/sbml:sbml/sbml:model/sbml:listOfSpecies/sbml:species[@id='{name}']"
    return f"/sbml:sbml/sbml:model/sbml:listOfParameters/sbml:parameter[@id='{name}']"


def to_sedml(exp: ModelExport, model_file: str = MODEL_FILE) -> str:
    """The SED-ML L1V3 document of the export's time course, as text."""
    libsedml = _lib("libsedml")
    doc = libsedml.SedDocument(1, 3)
    model = doc.createModel()
    _ok(model.setId("model"), "model")
    model.setName(f"ciksim {exp.name} model")
    model.setLanguage(SBML_LANGUAGE)
    model.setSource(model_file)
    sim = doc.createUniformTimeCourse()
    sim.setId("time_course")
    sim.setName(f"{exp.end_time:g} {exp.model.time_unit}s, output every {exp.step:g}")
    sim.setInitialTime(0.0)
    sim.setOutputStartTime(0.0)
    sim.setOutputEndTime(float(exp.end_time))
    sim.setNumberOfPoints(max(1, math.ceil(exp.end_time / exp.step - 1e-9)))
    alg = sim.createAlgorithm()
    alg.setKisaoID(CVODE)
    for kisao, value in TOLERANCES.items():
        par = alg.createAlgorithmParameter()
        par.setKisaoID(kisao)
        par.setValue(value)
    task = doc.createTask()
    task.setId("task")
    task.setModelReference("model")
    task.setSimulationReference("time_course")
    report = doc.createReport()
    report.setId("report")
    report.setName(f"ciksim {exp.name}: time and outputs")
    plot = doc.createPlot2D()
    plot.setId("plot")
    plot.setName(f"ciksim {exp.name}")
    for name in ("time", *exp.outputs):
        dg = doc.createDataGenerator()
        dg.setId(f"dg_{name}")
        dg.setName(name)
        var = dg.createVariable()
        var.setId(name)
        var.setTaskReference("task")
        if name == "time":
            var.setSymbol("urn:sedml:symbol:time")
        else:
            var.setTarget(_target(exp, name))
        dg.setMath(libsedml.parseFormula(name))
        ds = report.createDataSet()
        ds.setId(f"ds_{name}")
        ds.setLabel(name)
        ds.setDataReference(f"dg_{name}")
        if name != "time":
            curve = plot.createCurve()
            curve.setId(f"curve_{name}")
            curve.setXDataReference("dg_time")
            curve.setYDataReference(f"dg_{name}")
            curve.setLogY(False)
            curve.setLogX(False)
    text = libsedml.writeSedMLToString(doc)
    check = libsedml.readSedMLFromString(text)
    errors = [check.getError(i).getMessage() for i in range(check.getNumErrors())
              if check.getError(i).getSeverity() >= libsedml.LIBSEDML_SEV_ERROR]
    if errors:
        raise CikError("SED-ML export produced invalid SED-ML: " + "; ".join(errors))
    return text


def combine_archive(exp: ModelExport) -> bytes:
    """The COMBINE archive (OMEX) bytes: SBML model, SED-ML (master) and a description."""
    import tempfile
    from pathlib import Path

    libcombine = _lib("libcombine")
    archive = libcombine.CombineArchive()
    fmt = libcombine.KnownFormats.lookupFormat
    archive.addFileFromString(exp.sbml(), MODEL_FILE, fmt("sbml"), False)
    archive.addFileFromString(to_sedml(exp), SEDML_FILE, fmt("sedml"), True)
    desc = libcombine.OmexDescription()
    desc.setAbout(".")
    desc.setDescription(f"ciksim {__version__}: {exp.name} model, "
                        + ", ".join(f"{k} {v}" for k, v in exp.settings.items()
                                    if v is not None))
    desc.setCreated(libcombine.OmexDescription.getCurrentDateAndTime())
    archive.addMetadata(".", desc)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "archive.omex"
        if not archive.writeToFile(str(path)):
            raise CikError("COMBINE export: libcombine could not write the archive")
        archive.cleanUp()
        return path.read_bytes()


__all__ = ["combine_archive", "to_sedml"]
