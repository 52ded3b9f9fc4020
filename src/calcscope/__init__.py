"""calcscope: finds breast calcifications on mammograms and describes them in BI-RADS terms.

Research software, not a medical device.

>>> import calcscope
>>> analysis = calcscope.analyze("mammogram.dcm")          # doctest: +SKIP
>>> analysis.assessment.category                              # doctest: +SKIP

The package is laid out as the pipeline runs, data flowing one way:

* :mod:`calcscope.imaging`: reading DICOM and raster mammograms, preprocessing;
* :mod:`calcscope.detection`: candidates, features, the classifier, coarse deposits, clusters;
* :mod:`calcscope.reading`: BI-RADS description, location, assessment and their thresholds;
* :mod:`calcscope.reports`: the versioned report model and every rendering of it, one writer;
* :mod:`calcscope.apps`: the command line, web viewer, DICOM node and Dask batch;
* :mod:`calcscope.evaluation`: ground-truth readers, FROC, evaluation runs;
* :mod:`calcscope.phantom`: synthetic mammograms with known truth.

The names below are imported lazily, so ``import calcscope`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from calcscope.about import DISCLAIMER, __version__

if TYPE_CHECKING:
    from calcscope.config import Config, load_config
    from calcscope.errors import CalcscopeError, InputError
    from calcscope.pipeline import Analysis, analyze

__all__ = [
    "__version__",
    "DISCLAIMER",
    "Analysis",
    "analyze",
    "Config",
    "load_config",
    "CalcscopeError",
    "InputError",
]

_LAZY = {
    "Analysis": "calcscope.pipeline",
    "analyze": "calcscope.pipeline",
    "Config": "calcscope.config",
    "load_config": "calcscope.config",
    "CalcscopeError": "calcscope.errors",
    "InputError": "calcscope.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'calcscope' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
