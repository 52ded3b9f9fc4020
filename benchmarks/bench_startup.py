"""Start-up cost of the command line: ``calcscope --help`` and ``calcscope analyze one.dcm``
from a cold interpreter, beside the analysis itself.

Usage: ``python benchmarks/bench_startup.py [--repeat 5] [IMAGE]``

Runs each command ``--repeat`` times as a fresh ``python -m calcscope.apps.cli`` process and
prints the median wall and CPU time (user + system of the child). For ``analyze`` the
analysis's own time (``timings_s.total`` of the JSON report, reading included) is
subtracted: what remains is the start-up (imports, model loading) and the writing of the
outputs. The start-up alone is measured too (a child that imports what ``analyze`` imports
and loads the shipped model): its CPU time is the figure to read on a busy machine.
IMAGE defaults to a full-field
phantom written as DICOM. Target (issue 22): under 2 s plus the analysis.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: What ``analyze`` loads before its first image: the command line, the pipeline, the writer
#: and the shipped detector model.
STARTUP = (
    "import calcscope.apps.cli, calcscope.pipeline, calcscope.reports.writer\n"
    "from calcscope.config import Config\n"
    "from calcscope.detection.classifier import load_model\n"
    "load_model(Config().detect.model)\n"
)


def run(args: list[str], code: str | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one child ``python -m calcscope.apps.cli``
    (or ``python -c code``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    command = ["-c", code] if code else ["-m", "calcscope.apps.cli", *args]
    subprocess.run(
        [sys.executable, *command],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "80"},
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("image", type=Path, nargs="?")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        image = args.image or _phantom(Path(tmp))
        helps = [run(["--help"]) for _ in range(args.repeat)]
        starts = [run([], STARTUP) for _ in range(args.repeat)]
        runs = []
        for k in range(args.repeat):
            out = Path(tmp) / f"out{k}"
            wall, cpu = run(["analyze", str(image), "--out", str(out)])
            report = out / f"{image.stem}.json"
            analysis = float(json.loads(report.read_text())["timings_s"]["total"])
            runs.append((wall, cpu, analysis))
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}; image {image.name}")
    print(
        f"calcscope --help: {statistics.median(w for w, _ in helps):.2f} s wall, "
        f"{statistics.median(c for _, c in helps):.2f} s CPU"
    )
    print(
        f"start-up of analyze (imports, model loaded): "
        f"{statistics.median(w for w, _ in starts):.2f} s wall, "
        f"{statistics.median(c for _, c in starts):.2f} s CPU"
    )
    wall = statistics.median(r[0] for r in runs)
    analysis = statistics.median(r[2] for r in runs)
    print(
        f"calcscope analyze: {wall:.2f} s wall, {statistics.median(r[1] for r in runs):.2f} s "
        f"CPU; analysis {analysis:.2f} s; start-up and outputs "
        f"{statistics.median(r[0] - r[2] for r in runs):.2f} s wall"
    )


def _phantom(folder: Path) -> Path:
    from calcscope.imaging.io import write_image
    from calcscope.phantom.mammogram import make_phantom

    return Path(write_image(make_phantom(seed=0).mammogram, folder / "phantom.dcm"))


if __name__ == "__main__":
    main()
