"""Time of reading one image: the full-field phantom DICOM and a CBIS-DDSM film.

Usage: ``python benchmarks/bench_read.py [--repeat 7] [--film PATH] [--profile]``

Reads the 4096 x 3328 full-field phantom at 0.07 mm (written as DICOM, as
``benchmarks/profile_pipeline.py`` makes it) and the 0.05 mm CBIS-DDSM film (RLE Lossless,
``../shared/data/cbis-ddsm-images``, when present) ``--repeat`` times each, the images
interleaved, and prints the median wall and process CPU time of ``read_image`` (CPU time
is the figure to compare on a loaded machine), and which PackBits walk checked the RLE
segments, and the peak RSS of a fresh process reading each image once, above its RSS
after the imports (Linux). ``--profile`` also prints each read's cProfile (top functions
by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FILM = SHARED / "cbis-ddsm-images" / "Mass-Test_P_00173_LEFT_MLO.dcm"


_RSS = """
import json
from calcscope.imaging.io import read_image


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


base = status("VmRSS")
read_image({path!r}, spacing_mm={spacing!r})
print(json.dumps({{"base": base, "peak": status("VmHWM")}}))
"""


def fresh_rss(path: Path, spacing_mm: float | None) -> str:
    """Peak RSS of a fresh process reading ``path`` once, above its RSS after the imports."""
    if not Path("/proc/self/status").exists():
        return "peak RSS: needs Linux's /proc, skipped"
    code = _RSS.format(path=str(path), spacing=spacing_mm)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return f"fresh-process peak RSS above the imports: {(r['peak'] - r['base']) / 2**20:.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--film", type=Path, default=FILM)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--phantom", type=Path, default=None, help="a phantom DICOM written before (else made)"
    )
    args = ap.parse_args()
    from calcscope.imaging import codec_checks
    from calcscope.imaging.io import read_image, write_image
    from calcscope.phantom.mammogram import make_phantom

    built = getattr(codec_checks, "_packbits", None) is not None
    walk = "compiled" if built else "Python (not built)"
    print(f"PackBits walk: {walk}; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        phantom = args.phantom
        if phantom is None:
            ph = make_phantom(seed=0, spacing_mm=0.07)
            phantom = write_image(ph.mammogram, Path(tmp) / "phantom.dcm")
            del ph
        images: list[tuple[str, Path, float | None]] = [("full-field phantom", phantom, None)]
        if args.film.exists():
            images.append((f"film {args.film.name}", args.film, 0.05))
        for _, path, spacing in images:
            read_image(path, spacing_mm=spacing)  # warm-up: imports, file cache
        wall: dict[str, list[float]] = {n: [] for n, _, _ in images}
        cpu: dict[str, list[float]] = {n: [] for n, _, _ in images}
        for _ in range(args.repeat):
            for name, path, spacing in images:
                t, c = time.perf_counter(), time.process_time()
                read_image(path, spacing_mm=spacing)
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
        for name, _, _ in images:
            print(
                f"{name:<45} read: wall {statistics.median(wall[name]):.3f} s, "
                f"CPU {statistics.median(cpu[name]):.3f} s "
                f"(medians of {args.repeat}; CPU min {min(cpu[name]):.3f} s)"
            )
        for name, path, spacing in images:
            print(f"{name:<45} {fresh_rss(path, spacing)}")
        if args.profile:
            for name, path, spacing in images:
                prof = cProfile.Profile()
                prof.runcall(read_image, path, spacing_mm=spacing)
                print(f"\n== {name}")
                pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
