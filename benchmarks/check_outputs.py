"""Do the JSON reports stay the same? Write them before a change, compare after.

Usage::

    python benchmarks/check_outputs.py write OUT_DIR      # the JSON of every check image
    python benchmarks/check_outputs.py compare A_DIR B_DIR

The check images: the demo phantom (seed 0, 0.07 mm, written as DICOM and read back, as
``calcscope demo`` does), two more phantoms (seed 1 at 0.05 mm MLO, seed 2 at 0.1 mm) and
the CBIS-DDSM films of ``../shared/data/cbis-ddsm-images`` (0.05 mm, given on the command
line as they carry no spacing; skipped when absent). Timings and the random UIDs of the
phantom DICOMs are left out. ``compare`` prints, per image, ``identical``, or the fields that
differ; numbers that differ by under ``--rtol`` (relative) are counted as float noise and
listed apart.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
_IGNORED = {"timings_s", "study_instance_uid", "series_instance_uid", "sop_instance_uid", "path"}


def _strip(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _IGNORED}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def write(out: Path) -> None:
    """Analyse every check image and write its stripped JSON report into ``out``."""
    from calcscope.imaging.io import write_image
    from calcscope.model import View
    from calcscope.phantom.mammogram import make_phantom
    from calcscope.pipeline import analyze
    from calcscope.reports.schema import to_report

    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Path, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, seed, mm, view in (
            ("demo", 0, 0.07, View.CC),
            ("phantom-s1-005", 1, 0.05, View.MLO),
            ("phantom-s2-010", 2, 0.1, View.CC),
        ):
            ph = make_phantom(seed=seed, spacing_mm=mm, view=view)
            jobs.append((name, write_image(ph.mammogram, Path(tmp) / f"{name}.dcm"), None))
        films = sorted((SHARED / "cbis-ddsm-images").glob("*.dcm"))
        jobs += [(p.stem, p, 0.05) for p in films]
        for name, path, spacing in jobs:
            report = to_report(analyze(path, spacing_mm=spacing))
            data = _strip(report.model_dump(mode="json"))
            (out / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True))
            print(f"{name}: written", flush=True)


def _diff(a: object, b: object, where: str, rtol: float, out: list[tuple[str, bool]]) -> None:
    """Append (path, is_float_noise) for every difference between ``a`` and ``b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            _diff(a.get(k), b.get(k), f"{where}.{k}", rtol, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{where}[{i}]", rtol, out)
    elif isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        if a != b:
            noise = math.isclose(a, float(b), rel_tol=rtol, abs_tol=1e-9)
            out.append((where, noise))
    elif a != b:
        out.append((where, False))


def compare(a_dir: Path, b_dir: Path, rtol: float) -> int:
    """Print the differences of each report; 1 when any is more than float noise."""
    worst = 0
    for a in sorted(a_dir.glob("*.json")):
        b = b_dir / a.name
        if not b.exists():
            print(f"{a.stem}: missing in {b_dir}")
            worst = 1
            continue
        diffs: list[tuple[str, bool]] = []
        _diff(json.loads(a.read_text()), json.loads(b.read_text()), "", rtol, diffs)
        real = [w for w, noise in diffs if not noise]
        noise = [w for w, is_noise in diffs if is_noise]
        if not diffs:
            print(f"{a.stem}: identical")
        elif not real:
            print(f"{a.stem}: float noise only ({len(noise)} numbers within rtol {rtol})")
        else:
            worst = 1
            print(f"{a.stem}: {len(real)} differences, e.g. {real[:5]}")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--rtol", type=float, default=1e-4)
    args = ap.parse_args()
    if args.cmd == "write":
        write(args.out)
    else:
        sys.exit(compare(args.a, args.b, args.rtol))


if __name__ == "__main__":
    main()
