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
from calcscope.reports.exam import load_exam


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = (int(v) for v in text.split("-", 1))
        return list(range(a, b + 1))
    return [int(v) for v in text.split(",")]


def _one(seed: int, root: Path) -> list[tuple[str, str | None, str, float | None]]:
    """(name, change given or None when the cluster was not found, expected, distance shift)."""
    folder = root / f"seed{seed}"
    write_follow_up_phantom(folder, seed=seed, spacing_mm=0.1)
    out = folder / "out"
    argv = ["analyze", str(folder / "prior"), str(folder / "current"), "--out", str(out)]
    cli([*argv, "--no-overlay"])
    truth = json.loads((folder / "truth.json").read_text())
    docs = {d.study_instance_uid: d for d in map(load_exam, out.glob("*.exam.json"))}
    now, before = (
        docs[truth["current"]["study_instance_uid"]],
        docs[truth["prior"]["study_instance_uid"]],
    )
    prior_d = {f.id: f.distance_from_nipple_mm for b in before.breasts.values() for f in b.findings}
    rows = []
    for cl in truth["clusters"]:
        where = cl["current"]
        found = [
            f
            for f in now.breasts[cl["laterality"]].findings
            if f.kind == "cluster"
            and set(f.views) == {"CC", "MLO"}
            and abs(f.distance_from_nipple_mm - where["distance_from_nipple_mm"]) < 10
            and f.quadrant == where["quadrant"]
        ]
        if len(found) != 1 or found[0].change is None:
            rows.append((cl["name"], None, cl["change"], None))
            continue
        ch = found[0].change
        shift = None
        if ch.prior_finding_id is not None and found[0].distance_from_nipple_mm is not None:
            d = prior_d.get(ch.prior_finding_id)
            shift = None if d is None else abs(found[0].distance_from_nipple_mm - d)
        rows.append((cl["name"], ch.change, cl["change"], shift))
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
            print(f"seed {seed}: " + ", ".join(f"{n} {g} (expected {e})" for n, g, e, _ in got))
            rows += got
    found = [r for r in rows if r[1] is not None]
    matched_ok = [
        r for r in found if (r[2] == "new") == (r[1] == "new")
    ]  # matched to a prior exactly when it had one
    right = [r for r in found if r[1] == r[2]]
    shifts = sorted(r[3] for r in found if r[3] is not None)
    print(f"truth clusters found on both views: {len(found)} of {len(rows)}")
    print(f"matched right (to its prior, or to none when new): {len(matched_ok)} of {len(found)}")
    print(f"change labelled right: {len(right)} of {len(found)}")
    for name in ("growing", "stable", "new"):
        mine = [r for r in found if r[0] == name]
        print(f"  {name}: {sum(r[1] == r[2] for r in mine)} of {len(mine)}")
    if shifts:
        print(
            "distance-from-nipple shift of matched clusters: "
            f"median {shifts[len(shifts) // 2]:.1f} mm, max {shifts[-1]:.1f} mm"
        )


if __name__ == "__main__":
    main()
