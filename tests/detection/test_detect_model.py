"""The candidate classifier: shipped ensemble, models given by path, averaging."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from calcscope.config import Config, DetectConfig
from calcscope.detection.classifier import load_model, model_files, score_candidates
from calcscope.detection.features import Candidates
from calcscope.errors import ConfigError


def _candidates(n: int, rng: np.random.Generator) -> Candidates:
    k = len(Candidates.FEATURE_NAMES)
    x = rng.normal(size=(n, k))
    return Candidates(
        label=np.arange(n, dtype=np.int32),
        center_rc=rng.uniform(0, 100, (n, 2)),
        bbox_rc=np.zeros((n, 4), dtype=np.int64),
        peak_cnr=x[:, 0],
        band_cnr=x[:, 1:4],
        tophat_z=x[:, 4],
        contrast=x[:, 5],
        area_mm2=x[:, 6],
        diameter_mm=x[:, 7],
        major_mm=x[:, 8],
        minor_mm=np.abs(x[:, 9]),
        mean_intensity=x[:, 11],
        local_rms=np.abs(x[:, 12]),
        neighbours=x[:, 14],
        score=np.zeros(n),
        pixel_mm=0.1,
    )


def _booster(x: np.ndarray, y: np.ndarray, seed: int) -> lgb.Booster:
    params = {"objective": "binary", "verbose": -1, "seed": seed, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(x, y, params={"verbose": -1}), 5)


def test_shipped_model_is_an_ensemble_of_three():
    files = model_files(Config().detect.model)
    assert [f.name for f in files] == [f"candidates-v2.{i}.lgb.txt" for i in (1, 2, 3)]
    assert len(load_model(Config().detect.model)) == 3


def test_ensemble_score_is_the_mean_of_its_members(tmp_path: Path):
    rng = np.random.default_rng(0)
    cands = _candidates(200, rng)
    x = cands.feature_matrix()
    # two members that disagree: trained on different evidence
    members = [
        _booster(x, (x[:, j] + rng.normal(0, 0.5, len(x)) > 0).astype(int), j) for j in (0, 4)
    ]
    for i, b in enumerate(members, start=1):
        b.save_model(str(tmp_path / f"m.{i}.lgb.txt"))
    got = score_candidates(cands, DetectConfig(model=str(tmp_path / "m")))
    want = np.mean([b.predict(x) for b in members], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # one member alone, by its file name
    one = score_candidates(cands, DetectConfig(model=str(tmp_path / "m.1.lgb.txt")))
    np.testing.assert_allclose(one, members[0].predict(x), rtol=1e-9)
    assert not np.allclose(one, got)


def test_missing_model_is_a_config_error(tmp_path: Path):
    cands = _candidates(3, np.random.default_rng(1))
    with pytest.raises(ConfigError, match="not found"):
        score_candidates(cands, DetectConfig(model=str(tmp_path / "absent")))
    with pytest.raises(ConfigError, match="not found"):
        score_candidates(cands, DetectConfig(model="no-such-model"))
