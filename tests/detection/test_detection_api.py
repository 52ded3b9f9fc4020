"""The public API of calcscope.detection: what other packages and scripts import."""

from __future__ import annotations

import importlib
import types

import calcscope.detection
import calcscope.detection.detect as detect_module


def test_package_exports_its_public_api():
    assert sorted(calcscope.detection.__all__) == [
        "Candidates",
        "Detection",
        "cluster_calcifications",
    ]
    for name in calcscope.detection.__all__:
        assert getattr(calcscope.detection, name) is not None


def test_detect_submodule_is_not_shadowed():
    # a package attribute ``detect`` (the function) would replace the submodule here
    assert isinstance(detect_module, types.ModuleType)
    assert callable(detect_module.detect)


def test_detect_module_keeps_the_names_other_packages_import():
    for name in detect_module.__all__:
        assert hasattr(detect_module, name), name
    classifier = importlib.import_module("calcscope.detection.classifier")
    features = importlib.import_module("calcscope.detection.features")
    assert detect_module.score_candidates is classifier.score_candidates
    assert detect_module.Candidates is features.Candidates
    assert detect_module.MODEL_DIR.is_dir()
    assert detect_module.model_files("candidates-v2.3")
