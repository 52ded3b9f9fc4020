"""What calcscope is: its version and the disclaimer every report carries."""

from __future__ import annotations

__all__ = ["__version__", "DISCLAIMER"]

__version__ = "0.1.0"

DISCLAIMER = (
    "calcscope is research software, not a medical device: its output is not a diagnosis "
    "and must not be used for clinical decisions."
)
