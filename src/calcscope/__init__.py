"""calcscope: finds breast calcifications on mammograms and describes them in BI-RADS terms.

Research software, not a medical device.

>>> import calcscope
>>> analysis = calcscope.analyze("mammogram.dcm")          # doctest: +SKIP
>>> analysis.assessment.category                              # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

DISCLAIMER = (
    "calcscope is research software, not a medical device: its output is not a diagnosis "
    "and must not be used for clinical decisions."
)

from calcscope.config import Config, load_config  # noqa: E402
from calcscope.errors import CalcscopeError, InputError  # noqa: E402
from calcscope.pipeline import Analysis, analyze  # noqa: E402

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
