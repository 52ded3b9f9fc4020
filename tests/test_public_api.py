"""The public API is pinned: what ``calcscope`` and its public modules export, and that
``import calcscope`` stays cheap (the pipeline and OpenCV load on first use only).

A change to these lists is a change of the public API: update this test and the README's
"Python" and "Outputs" sections with it.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import calcscope

EXPORTED: dict[str, set[str]] = {
    "calcscope": {
        "__version__",
        "DISCLAIMER",
        "Analysis",
        "analyze",
        "Config",
        "load_config",
        "CalcscopeError",
        "InputError",
    },
    "calcscope.about": {"__version__", "DISCLAIMER"},
    "calcscope.files": {"atomic_path", "write_atomic", "fsync_dir"},
    "calcscope.reports.writer": {
        "SUFFIXES",
        "SEED_FILE",
        "folder_seed",
        "OutputOptions",
        "Outputs",
        "output_paths",
        "write_outputs",
    },
    "calcscope.exam": {
        "build_exam",
        "group_exams",
        "read_manifest",
        "ExamGroup",
        "Exam",
        "ExamFinding",
        "ExamImage",
        "BreastReading",
        "FindingKind",
        "ViewFinding",
        "clock_face",
        "pair_views",
        "ExamView",
        "ViewModifier",
        "ViewRole",
        "view_from_dataset",
        "Change",
        "Comparison",
        "FindingChange",
        "MatchConfig",
        "compare_exams",
        "change_sentence",
    },
    "calcscope.reports.exam": {
        "EXAM_SCHEMA_VERSION",
        "EXAM_SUFFIX",
        "ExamReport",
        "to_exam_report",
        "exam_file_name",
        "exam_image_from_report",
        "write_exam",
        "load_exam",
        "prior_from_report",
    },
    "calcscope.phantom": {
        "TrueCalcification",
        "TrueCluster",
        "TrueMacro",
        "PhantomTruth",
        "Phantom",
        "ClusterSpec",
        "CLUSTER_MORPHOLOGIES",
        "MACRO_PATTERNS",
        "make_phantom",
        "insert_clusters",
        "insert_benchmark_clusters",
        "insert_dome_clusters",
        "CALC_FREE_FILMS",
        "BENCHMARK_PIECE_MM",
        "truth_to_dict",
        "full_field_shape",
        "phantom_summary",
    },
}


@pytest.mark.parametrize("module_name", sorted(EXPORTED))
def test_exported_members(module_name: str) -> None:
    """``__all__`` is exactly the pinned list, without duplicates, and every name resolves."""
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ has duplicates"
    assert set(exported) == EXPORTED[module_name]
    for name in exported:
        assert getattr(module, name) is not None, f"{module_name}.{name}"


def test_star_import_gives_every_exported_name() -> None:
    namespace: dict[str, object] = {}
    exec("from calcscope import *", namespace)
    assert EXPORTED["calcscope"] <= set(namespace)


def test_root_names_are_the_objects_of_their_modules() -> None:
    from calcscope.about import DISCLAIMER, __version__
    from calcscope.config import Config, load_config
    from calcscope.errors import CalcscopeError, InputError
    from calcscope.pipeline import Analysis, analyze

    assert calcscope.__version__ == __version__
    assert calcscope.DISCLAIMER == DISCLAIMER
    assert "not a medical device" in DISCLAIMER
    assert calcscope.analyze is analyze and calcscope.Analysis is Analysis
    assert calcscope.Config is Config and calcscope.load_config is load_config
    assert calcscope.CalcscopeError is CalcscopeError and calcscope.InputError is InputError
    assert issubclass(InputError, CalcscopeError)
    assert sorted(dir(calcscope)) == sorted(EXPORTED["calcscope"])


def test_unknown_root_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = calcscope.no_such_name  # type: ignore[attr-defined]


def test_writer_naming_rule() -> None:
    """The one naming rule of the README's "Outputs" table: ``<stem><suffix>``."""
    from calcscope.reports.writer import SUFFIXES, output_paths

    assert SUFFIXES == {
        "json": ".json",
        "overlay": ".overlay.png",
        "sr": ".sr.dcm",
        "gsps": ".gsps.dcm",
        "html": ".html",
        "letter_html": ".letter.html",
        "letter_txt": ".letter.txt",
    }
    names = {kind: p.name for kind, p in output_paths("out", "case1").items()}
    assert names["json"] == "case1.json" and names["letter_txt"] == "case1.letter.txt"


def _modules_after(code: str) -> set[str]:
    """The names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(calcscope.__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    script = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_import_calcscope_does_not_load_the_pipeline() -> None:
    loaded = _modules_after("import calcscope")
    assert "calcscope" in loaded and "calcscope.about" in loaded
    for heavy in ("calcscope.pipeline", "cv2", "lightgbm"):
        assert heavy not in loaded, f"import calcscope loaded {heavy}"


def test_first_use_loads_the_pipeline() -> None:
    """The lazy root really reaches the pipeline (the test above can fail)."""
    loaded = _modules_after("import calcscope\ncalcscope.analyze")
    assert "calcscope.pipeline" in loaded and "cv2" in loaded


def _public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(calcscope.__path__, prefix="calcscope."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _import_or_skip(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional extra (web, dicom, batch) not installed
        if exc.name and exc.name.split(".")[0] != "calcscope":
            pytest.skip(f"{name} needs {exc.name}")
        raise


@pytest.mark.parametrize("module_name", _public_modules())
def test_every_all_name_is_defined(module_name: str) -> None:
    """In every public module that defines ``__all__``, each name exists."""
    module = _import_or_skip(module_name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names undefined {missing}"
