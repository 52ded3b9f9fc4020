"""False clusters and inserted-cluster sensitivity on real high-resolution film (issue 18).

Usage::

    python benchmarks/bench_real_hires.py --data ../shared/data [--seeds 0-2]

Data: CBIS-DDSM (Sawyer-Lee R, Gimenez F, Hoogi A, Rubin D, The Cancer Imaging Archive,
2016; Clark K et al., J Digit Imaging 2013; CC BY 3.0): the four views of P_00173
(``cbis-ddsm-images/``) and ``dicom/Mass-Test_P_00820_LEFT_CC.dcm``, both women without a
listed calcification, so every reported cluster is false; and ``dicom/MG1_J2KI.dcm`` (DICOM
WG04 sample, a DDSM film with a malignant mass *with* microcalcifications: its clusters are
listed but counted in no false-cluster figure). All are read at ``--spacing-mm`` 0.05.

For each image and seed, :func:`calcscope.phantom.insert_clusters` inserts two clusters
(5-12 members; of the shape library's morphologies, so 0.15-1 mm pieces; peak contrast
0.03-0.1) into the analysable breast of the real image; an inserted
cluster is found when a reported cluster's centre lies within its radius (at least 2 mm)
plus 1 mm. Prints one row per image (false clusters at the report's operating point,
inserted clusters found, seconds per analysis) and the totals; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from calcscope.config import Config
from calcscope.imaging.io import read_image
from calcscope.imaging.preprocess import preprocess
from calcscope.model import Mammogram
from calcscope.phantom import insert_clusters
from calcscope.pipeline import Analysis, analyze_mammogram

CALC_FREE = (
    "cbis-ddsm-images/Mass-Test_P_00173_LEFT_CC.dcm",
    "cbis-ddsm-images/Mass-Test_P_00173_LEFT_MLO.dcm",
    "cbis-ddsm-images/Mass-Test_P_00173_RIGHT_CC.dcm",
    "cbis-ddsm-images/Mass-Test_P_00173_RIGHT_MLO.dcm",
    "dicom/Mass-Test_P_00820_LEFT_CC.dcm",
)
"""Real high-resolution films without a listed calcification (paths under the data folder)."""
WITH_CALCS = ("dicom/MG1_J2KI.dcm",)
"""Real high-resolution film with real microcalcifications (not in the false counts)."""
SPACING_MM = 0.05
INSERT_CONTRAST = (0.03, 0.15)
"""Peak contrast of inserted clusters (image units, drawn log-uniformly per cluster): 6-35
times these films' finest-band noise (0.004-0.005) but only 1.3-10 times the tissue texture
of the top-hat residual (0.015-0.023); the dust specks that made false clusters had 0.07-0.25."""
FAINT_BELOW = 0.06
"""Inserted clusters of a lower level (mean member contrast) are counted apart (faint on
these films' texture)."""


@dataclass(frozen=True)
class ImageRow:
    """One real image's figures.

    Attributes
    ----------
    name : str
        File name.
    calc_free : bool
        Whether the data set lists no calcification (its clusters are false).
    clusters : int
        Clusters reported on the image as it is.
    inserted : int
        Clusters inserted over all seeds.
    found : int
        Inserted clusters found.
    inserted_faint, found_faint : int
        The same for clusters of level under :data:`FAINT_BELOW`.
    false_with_inserts : int
        Reported clusters matching no inserted one, over all seeds (calc-free images).
    seconds : float
        Mean seconds per analysis (the image as read; reading excluded).
    """

    name: str
    calc_free: bool
    clusters: int
    inserted: int
    found: int
    inserted_faint: int
    found_faint: int
    false_with_inserts: int
    seconds: float


def _found(analysis: Analysis, centre_rc: tuple[float, float], radius_mm: float) -> bool:
    """Whether a reported cluster's centre lies within ``radius_mm`` + 1 mm of
    ``centre_rc`` (radius at least 2 mm)."""
    sr, sc = analysis.mammogram.spacing_mm
    reach = max(radius_mm, 2.0) + 1.0
    return any(
        math.hypot(
            (f.cluster.center_rc[0] - centre_rc[0]) * sr,
            (f.cluster.center_rc[1] - centre_rc[1]) * sc,
        )
        <= reach
        for f in analysis.clusters
    )


def measure_image(
    mammo: Mammogram, name: str, calc_free: bool, seeds: list[int], config: Config
) -> ImageRow:
    """Analyse ``mammo`` as it is and with two clusters inserted per seed."""
    t0 = time.perf_counter()
    plain = analyze_mammogram(mammo, config)
    seconds = [time.perf_counter() - t0]
    region = preprocess(mammo, config.preprocess).mask
    inserted = found = false = inserted_faint = found_faint = 0
    for seed in seeds:
        ph = insert_clusters(
            mammo,
            region,
            seed=seed,
            n_clusters=2,
            members=(5, 12),
            radius_mm=(2.0, 6.0),
            contrast=INSERT_CONTRAST,
        )
        t0 = time.perf_counter()
        a = analyze_mammogram(ph.mammogram, config)
        seconds.append(time.perf_counter() - t0)
        for tc in ph.truth.clusters:
            hit = _found(a, tc.center_rc, tc.radius_mm)
            members = [ph.truth.calcifications[i - 1].contrast for i in tc.member_ids]
            level = sum(members) / len(members)  # the cluster's level (members 0.6-1.4x)
            faint = level < FAINT_BELOW
            inserted, found = inserted + 1, found + hit
            inserted_faint, found_faint = inserted_faint + faint, found_faint + (hit and faint)
        matched = 0
        for f in a.clusters:
            sr, sc = mammo.spacing_mm
            if any(
                math.hypot(
                    (f.cluster.center_rc[0] - tc.center_rc[0]) * sr,
                    (f.cluster.center_rc[1] - tc.center_rc[1]) * sc,
                )
                <= max(tc.radius_mm, 2.0) + 1.0
                for tc in ph.truth.clusters
            ):
                matched += 1
        false += len(a.clusters) - matched
    return ImageRow(
        name,
        calc_free,
        len(plain.clusters),
        inserted,
        found,
        inserted_faint,
        found_faint,
        false,
        sum(seconds) / len(seconds),
    )


def _seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--seeds", default="0-2", help="insertion seeds, e.g. 0-2")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument(
        "--rules-off",
        action="store_true",
        help="without the high-resolution rules (sharp specks, sure cluster members): the "
        "detector as it was before issue 18",
    )
    args = ap.parse_args(argv)
    config = Config()
    if args.rules_off:
        config = config.model_copy(
            update={
                "detect": config.detect.model_copy(update={"speck_max_pixel_mm": 0.0}),
                "cluster": config.cluster.model_copy(update={"sure_members": 0}),
            }
        )
    rows: list[ImageRow] = []
    paths = [(p, True) for p in CALC_FREE] + [(p, False) for p in WITH_CALCS]
    print(
        f"{'image':38s} {'clusters':>8s} {'found':>9s} {'faint':>9s} {'false+ins':>9s} "
        f"{'s/image':>8s}"
    )
    for rel, calc_free in paths:
        path = args.data / rel
        if not path.is_file():
            print(f"{rel}: absent, skipped")
            continue
        mammo = read_image(path, spacing_mm=SPACING_MM, config=config.io)
        row = measure_image(mammo, path.name, calc_free, _seeds(args.seeds), config)
        rows.append(row)
        flag = "" if calc_free else " (has real calcifications)"
        print(
            f"{row.name:38s} {row.clusters:8d} {row.found:4d}/{row.inserted:<4d} "
            f"{row.found_faint:4d}/{row.inserted_faint:<4d} "
            f"{row.false_with_inserts:9d} {row.seconds:8.2f}{flag}",
            flush=True,
        )
    free = [r for r in rows if r.calc_free]
    if free:
        fc = sum(r.clusters for r in free) / len(free)
        n_ins = sum(r.inserted for r in rows)
        sens = sum(r.found for r in rows) / max(n_ins, 1)
        print(f"false clusters per calcification-free image: {fc:.2f} ({len(free)} images)")
        print(f"inserted clusters found: {sens:.2f} ({n_ins} clusters, all images)")
        n_faint = sum(r.inserted_faint for r in rows)
        n_clear = n_ins - n_faint
        f_faint = sum(r.found_faint for r in rows)
        f_clear = sum(r.found for r in rows) - f_faint
        print(
            f"  of level >= {FAINT_BELOW:g}: {f_clear / max(n_clear, 1):.2f} ({n_clear}); "
            f"fainter: {f_faint / max(n_faint, 1):.2f} ({n_faint})"
        )
        print(f"mean seconds per analysis: {sum(r.seconds for r in rows) / len(rows):.2f}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
