"""The shipped detector on the real mini-MIAS images (in ``../shared/data``).

These are the images the shipped models were trained on, so this is no measure of accuracy
(the README's leave-one-woman-out figures are, from ``calcscope train --cv``: the rebuild
command on the shipped model's card); it checks that ``calcscope evaluate`` still
reproduces the README's in-sample row and that the operating points keep their meaning on
film.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calcscope.config import Config
from calcscope.evaluation.froc import sensitivity_at
from calcscope.evaluation.run import evaluate_images


@pytest.fixture(scope="module")
def mias_result(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    mias = shared_data / "mini-mias"
    if not (mias / "images").is_dir():
        pytest.skip(f"mini-MIAS images not found in {mias}")
    out = tmp_path_factory.mktemp("mias-eval")
    return evaluate_images("mias", mias / "images", mias / "Info.txt", out)


def test_in_sample_figures_match_the_readme(mias_result) -> None:
    curve = mias_result.cluster_curve
    assert curve.n_images == 70 and curve.n_true == 12
    assert set(mias_result.excluded) == {"mdb212", "mdb214", "mdb216", "mdb245"}
    assert not mias_result.failed
    # README, in-sample row: 0.83 at 0.25, 0.5, 1 and 2 false positives per image
    for fp in (0.25, 0.5, 1.0, 2.0):
        assert sensitivity_at(curve, fp) == pytest.approx(10 / 12)


def test_reported_clusters_stop_near_one_false_positive_per_image(mias_result) -> None:
    """``cluster.operating_score`` was chosen at about 1 false cluster per image (on the
    held-out curve); in-sample the reported clusters must not run far beyond that."""
    curve = mias_result.cluster_curve
    op = Config().cluster.operating_score
    assert min(curve.threshold) >= op
    assert max(curve.mean_fp_per_image) <= 1.5
