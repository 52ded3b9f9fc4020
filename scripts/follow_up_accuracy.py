"""Matching and change on synthetic follow-ups with a changed positioning (docs/accuracy.md).

Usage::

    python scripts/follow_up_accuracy.py --seeds 1-8

For each seed it writes :func:`calcscope.phantom.follow_up.write_follow_up_phantom` (a prior
and a current exam two years apart, the current one compressed and positioned
differently), runs ``calcscope analyze PRIOR CURRENT`` and, for each truth cluster found on
both views of the current exam (within 10 mm of its true distance from the nipple, in its
quadrant), checks the change it was given (increased, stable, new). Printed: the clusters
found, the matching figures (a growing or stable cluster matched to its prior; a new one
matched to none), the labels right, and the shift of the matched clusters' distance from
the nipple between the exams (what :attr:`MatchConfig.distance_tolerance_mm` must allow).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from calcscope.apps.cli import main as cli
from calcscope.phantom.follow_up import write_follow_up_phantom
from calcscope.reports.exam import ExamFindingModel, ExamReport, load_exam


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = (int(v) for v in text.split("-", 1))
        return list(range(a, b + 1))
    return [int(v) for v in text.split(",")]


def _found(doc: ExamReport, lat: str, where: dict) -> list[ExamFindingModel]:
    """The findings of ``doc`` seen on both views near a truth cluster's place."""
    return [
        f
        for f in doc.breasts[lat].findings
        if f.kind == "cluster"
        and set(f.views) == {"CC", "MLO"}
        and f.distance_from_nipple_mm is not None
        and abs(f.distance_from_nipple_mm - where["distance_from_nipple_mm"]) < 10
        and f.quadrant == where["quadrant"]
    ]


def _one(seed: int, root: Path) -> list[tuple[str, str | None, str, bool | None, float | None]]:
    """Per truth cluster: (name, change given or None when not found, expected, matched to
    its true prior (None: that one not found), shift of the distance from the nipple)."""
    folder = root / f"seed{seed}"
    write_follow_up_phantom(folder, seed=seed, spacing_mm=0.1)
    out = folder / "out"
    argv = ["analyze", str(folder / "prior"), str(folder / "current"), "--out", str(out)]
    cli([*argv, "--no-overlay"])
    truth = json.loads((folder / "truth.json").read_text())
    docs = {d.study_instance_uid: d for d in map(load_exam, out.glob("*.exam.json"))}
    now = docs[truth["current"]["study_instance_uid"]]
    before = docs[truth["prior"]["study_instance_uid"]]
    rows = []
    for cl in truth["clusters"]:
        found = _found(now, cl["laterality"], cl["current"])
        if len(found) != 1 or found[0].change is None:
            rows.append((cl["name"], None, cl["change"], None, None))
            continue
        f, ch = found[0], found[0].change
        true_prior = _found(before, cl["laterality"], cl["prior"]) if cl["prior"] else []
        right: bool | None
        shift = None
        if cl["prior"] is None:
            right = ch.prior_finding_id is None
        elif len(true_prior) != 1:
            right = None
        else:
            right = ch.prior_finding_id == true_prior[0].id
            if right and f.distance_from_nipple_mm is not None:
                shift = abs(f.distance_from_nipple_mm - true_prior[0].distance_from_nipple_mm)
        rows.append((cl["name"], ch.change, cl["change"], right, shift))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", default="1-8", help="seed range a-b or list a,b,c")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in _seeds(args.seeds):
            try:
                got = _one(seed, Path(tmp))
            except ValueError as exc:  # no room for the clusters in this seed's breasts
                print(f"seed {seed}: skipped ({exc})")
                continue
            print(f"seed {seed}: " + ", ".join(f"{r[0]} {r[1]} (expected {r[2]})" for r in got))
            rows += got
    found = [r for r in rows if r[1] is not None]
    judged = [r for r in found if r[3] is not None]
    right = [r for r in found if r[1] == r[2]]
    shifts = sorted(r[4] for r in found if r[4] is not None)
    print(f"truth clusters found on both views of the current exam: {len(found)} of {len(rows)}")
    print(
        "matched to the right prior finding (to none when new), where the prior's was found: "
        f"{sum(bool(r[3]) for r in judged)} of {len(judged)}"
    )
    print(f"change labelled right: {len(right)} of {len(found)}")
    for name in ("growing", "stable", "new"):
        mine = [r for r in found if r[0] == name]
        print(f"  {name}: {sum(r[1] == r[2] for r in mine)} of {len(mine)}")
    if shifts:
        print(
            "distance-from-nipple shift of rightly matched clusters: "
            f"median {shifts[len(shifts) // 2]:.1f} mm, max {shifts[-1]:.1f} mm"
        )


if __name__ == "__main__":
    main()
