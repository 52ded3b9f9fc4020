"""Calcification detection: from a preprocessed mammogram to scored calcifications and
their clusters.

Modules, in the order the detector runs them (:func:`calcscope.detection.detect.detect`):

- :mod:`~calcscope.detection.impulses`: single-pixel impulses (dead or hot pixels, dust,
  corrupt bytes) replaced by their 3 x 3 median, at 0.06-0.1 mm pixels.
- :mod:`~calcscope.detection.candidates`: multi-scale spot finding (band-pass stack,
  top-hat residual, seeded regions, their split into objects).
- :mod:`~calcscope.detection.features`: the per-candidate feature table
  (:class:`~calcscope.detection.features.Candidates`).
- :mod:`~calcscope.detection.classifier`: the shipped LightGBM candidate models
  (``models/``) and the score of each candidate.
- :mod:`~calcscope.detection.outline`: outlines, sizes and shape descriptors of the kept
  calcifications; :mod:`~calcscope.detection.contours`: their sub-pixel contour measures.
- :mod:`~calcscope.detection.deposits`: sharp-edged coarse deposits the classifier missed.
- :mod:`~calcscope.detection.detect`: :func:`detect`, the stages above in order.
- :mod:`~calcscope.detection.clusters`: grouping calcifications into clusters.

Public API: :class:`Detection` (the detector's output), :class:`Candidates` and
:func:`cluster_calcifications`; the detector itself is
:func:`calcscope.detection.detect.detect`. It is not imported here, since a package
attribute ``detect`` would shadow the submodule of that name (``import
calcscope.detection.detect as m`` would then bind the function).
"""

from calcscope.detection.clusters import cluster_calcifications
from calcscope.detection.detect import Detection
from calcscope.detection.features import Candidates

__all__ = ["Candidates", "Detection", "cluster_calcifications"]
