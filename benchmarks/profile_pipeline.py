"""Profile of one analysis: time and memory per stage, per step of detect, per report.

Usage: ``python benchmarks/profile_pipeline.py [--repeat 3] [--film PATH] [--serial-too]``

For the 4096 x 3328 full-field phantom at 0.07 mm (written as DICOM and read back) and a
0.05 mm CBIS-DDSM film (``../shared/data/cbis-ddsm-images``, when present) it prints:

- the reference: ten OpenCV Gaussian passes (sigma 2 px, float32) on the same image, and
  the analysis time as a ratio to it (the figure that travels between machines);
- the median wall and CPU time of each step over ``--repeat`` runs, detect split into its
  steps (a step whose CPU time is about its wall time ran on one core), with
  ``--serial-too`` also with the detector's thread pool off (``CALCSCOPE_THREADS=1``, the
  runs interleaved), and each mode's preprocess+detect over ten Gaussian passes;
- the share of preprocess+detect's CPU time in the strips the thread pool runs (what
  it can save on an idle machine, whatever the load of a shared one);
- per step, the numpy/OpenCV memory held after it and the peak during it (tracemalloc);
- the peak RSS of a fresh process (a subprocess that imports calcscope, then analyses the
  file) minus its RSS after the imports, in MiB and bytes per pixel, and, in another fresh
  process, the peak during each step and the RSS after it above the loaded model (bytes
  per pixel; the kernel's high-water mark reset before each step);
- the reports: the report model, the SR, the GSPS and the overlay PNG (time and size).

The detect steps repeat :func:`calcscope.detection.detect.detect`'s sequence with its
public step functions (see that module), the scale-matched CNR (``d.scale_cnr``) where detect
runs it (pixels up to 0.06 mm: the film); the replay's calcifications are checked against
``detect``'s before the table is made.
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
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FILM = SHARED / "cbis-ddsm-images" / "Mass-Test_P_00173_LEFT_MLO.dcm"


class Steps:
    """Records the time and the traced memory of named steps."""

    def __init__(self, trace: bool) -> None:
        self.trace = trace
        self.times: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.mem: dict[str, tuple[float, float]] = {}

    def run(self, name: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        if self.trace:
            tracemalloc.reset_peak()
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kw)
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c
        if self.trace:
            cur, peak = tracemalloc.get_traced_memory()
            self.mem[name] = (cur / 2**20, peak / 2**20)
        return out


def detect_steps(mammo: Any, prep: Any, cfg: Any, s: Steps) -> Any:
    """:func:`~calcscope.detection.detect.detect`, step by step."""
    from calcscope.detection import candidates as cd
    from calcscope.detection.classifier import scored_candidates
    from calcscope.detection.deposits import add_coarse_deposits, sharp_deposits
    from calcscope.detection.features import (
        context_features,
        measure_candidates,
        subset_candidates,
    )
    from calcscope.detection.impulses import remove_impulses
    from calcscope.detection.outline import outline_calcifications
    from calcscope.detection.scale_cnr import scale_cnr_active, with_scale_cnr
    from calcscope.detection.stripes import drop_stripe_candidates

    c = cfg.detect
    img = s.run("d.float32", lambda: mammo.pixels.astype(np.float32, copy=False))
    px, sp, mask = mammo.pixel_mm, mammo.spacing_mm, prep.mask
    img = s.run("d.impulses", remove_impulses, img, mask, px, c).image
    tophat = s.run("d.top_hat", cd.top_hat, img, px, mask, c.background_mm)
    deps = ()
    if px <= c.coarse_max_pixel_mm:
        deps = s.run("d.sharp_deposits", sharp_deposits, img, tophat, mask, px, c)
    marks = s.run("d.top_hat_marks", cd.top_hat_marks, tophat, mask, px, c)
    th = tophat if marks is None else marks
    del tophat  # as detect does
    bands = s.run("d.band_pass", cd.band_pass_stack, img, px, mask, c.grow_cnr)
    grown = s.run("d.grown_pixels", cd.grown_pixels, bands, th, mask, c)
    if bands.pending is None:
        bands = bands.with_coarse_at(grown)  # as detect does
    regions = s.run("d.seeded_regions", cd.seeded_regions, bands, th, mask, sp, c, grown)
    del grown
    objects = s.run("d.split_regions", cd.split_regions, regions, bands, th, mask, px, c)
    del regions  # as detect does
    bands = bands.kept_at(objects.pixels)
    objects, bands, tophat = s.run("d.object_values", cd.object_values, objects, bands, th, img)
    del th
    cands = s.run("d.measure", measure_candidates, objects, bands, tophat, sp, px)
    cands = subset_candidates(cands, cands.peak_cnr >= c.seed_cnr)
    cands = s.run("d.context", context_features, cands, bands.band_maps[0], px, sp)
    del bands  # as detect does
    cands = s.run("d.score", scored_candidates, cands, c)
    cands = s.run("d.stripes", drop_stripe_candidates, img, mask, cands, c)
    thr = min(c.min_score, c.operating_score)
    calcs = s.run(
        "d.outline",
        outline_calcifications,
        mammo,
        objects.labels,
        cands,
        thr,
        tophat.residual,
        tophat.sigma,
    )
    if scale_cnr_active(px, c):  # as detect does (film at 0.05 mm)
        calcs = s.run(
            "d.scale_cnr", with_scale_cnr, mammo, img, mask, objects.labels, cands, calcs, tophat, c
        )
    return s.run("d.coarse_deposits", add_coarse_deposits, mammo, calcs, deps, tophat, c)


def check_replay(mammo: Any, cfg: Any) -> None:
    """Check that :func:`detect_steps` gives :func:`~calcscope.detection.detect.detect`'s
    calcifications (so that the per-step table times the steps detect runs)."""
    from calcscope.detection.detect import detect
    from calcscope.imaging.preprocess import preprocess

    prep = preprocess(mammo, cfg.preprocess)
    replay = detect_steps(mammo, prep, cfg, Steps(trace=False))
    real = detect(mammo, prep, cfg.detect).calcifications
    same = len(replay) == len(real) and all(
        a.id == b.id
        and a.center_rc == b.center_rc
        and a.score == b.score
        and a.scale_cnr == b.scale_cnr
        and a.diameter_mm == b.diameter_mm
        for a, b in zip(replay, real, strict=True)
    )
    if not same:
        raise SystemExit("the per-step replay of detect differs from detect: update detect_steps")


def gaussian_reference(img: np.ndarray) -> tuple[float, float]:
    """Wall and CPU seconds of ten OpenCV Gaussian passes (sigma 2 px) on ``img`` as
    float32."""
    f = img.astype(np.float32)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(10):
        cv2.GaussianBlur(f, (0, 0), 2.0)
    return time.perf_counter() - t, time.process_time() - c


THREADS_ENV = "CALCSCOPE_THREADS"  # calcscope.detection.parallel.THREADS_ENV
MODES: dict[str, str | None] = {"serial": "1", "threads": None}
"""The detector's thread pool off (one thread) and as it ships (``cv2.getNumThreads()``)."""


def set_mode(mode: str) -> None:
    """Run the detector's strips serially (``serial``) or as it ships (``threads``)."""
    value = MODES[mode]
    if value is None:
        os.environ.pop(THREADS_ENV, None)
    else:
        os.environ[THREADS_ENV] = value


def analysis_ratio(
    path: Path, spacing_mm: float | None, pixels: np.ndarray, repeat: int, modes: list[str]
) -> Any:
    """Print the analysis time as a ratio to ten Gaussian passes, per mode (the runs of
    the modes interleaved, the reference right before each), with the load average."""
    from calcscope.pipeline import analyze

    runs: dict[str, list[tuple[float, float, float, float, dict[str, float]]]] = {
        m: [] for m in modes
    }
    a = None
    for _ in range(repeat):
        for mode in modes:
            set_mode(mode)
            # the reference right before each analysis: the machine is shared
            ref_wall, ref_cpu = gaussian_reference(pixels)
            t, c = time.perf_counter(), time.process_time()
            a = analyze(path, spacing_mm=spacing_mm)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            runs[mode].append((ref_wall, ref_cpu, wall, cpu, a.timings_s))
    set_mode("threads")
    load = os.getloadavg()
    for mode in modes:
        r = runs[mode]
        med = [
            statistics.median(x[0] for x in r),
            statistics.median(x[1] for x in r),
            statistics.median(x[2] for x in r),
            statistics.median(x[3] for x in r),
        ]
        ratio = statistics.median(x[2] / x[0] for x in r)
        cpu_ratio = statistics.median(x[3] / x[1] for x in r)
        print(
            f"[{mode}] ten Gaussian passes (sigma 2 px): {med[0]:.3f} s (CPU {med[1]:.3f} s); "
            f"analysis (read included): {med[2]:.3f} s (CPU {med[3]:.3f} s) = {ratio:.2f} x "
            f"the reference (median of the per-run ratios; CPU time {cpu_ratio:.2f} x); "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )
    stage_runs = [x[4] for x in runs[modes[-1]]]
    print(f"{'stage':<22}{'median s':>10}  ({modes[-1]})")
    for k in stage_runs[0]:
        print(f"{k:<22}{statistics.median(r[k] for r in stage_runs):>10.3f}")
    return a


def step_profile(mammo: Any, cfg: Any, repeat: int, modes: list[str]) -> None:
    """Print each step's median wall and CPU time per mode (the modes interleaved; a step
    whose CPU time is about its wall time ran on one core) and its traced memory."""
    from calcscope.imaging.preprocess import preprocess

    wall: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    cpu: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for _ in range(repeat):
        for mode in modes:
            set_mode(mode)
            s = Steps(trace=False)
            prep = s.run("preprocess", preprocess, mammo, cfg.preprocess)
            detect_steps(mammo, prep, cfg, s)
            wall[mode].append(s.times)
            cpu[mode].append(s.cpu)
    set_mode("threads")
    tracemalloc.start()
    s = Steps(trace=True)
    prep = s.run("preprocess", preprocess, mammo, cfg.preprocess)
    detect_steps(mammo, prep, cfg, s)
    tracemalloc.stop()
    mp = mammo.pixels.size / 1e6
    head = "".join(f"{m + ' s':>11}{'cpu s':>8}" for m in modes)
    print(f"{'step':<22}{head}{'held MiB':>10}{'peak MiB':>10}  (traced, {mp:.1f} MP)")
    totals = {m: [0.0, 0.0] for m in modes}
    for k in wall[modes[0]][0]:
        held, peak = s.mem[k]
        cells = ""
        for m in modes:
            t = statistics.median(r[k] for r in wall[m])
            c = statistics.median(r[k] for r in cpu[m])
            totals[m][0] += t
            totals[m][1] += c
            cells += f"{t:>11.3f}{c:>8.3f}"
        print(f"{k:<22}{cells}{held:>10.0f}{peak:>10.0f}")
    cells = "".join(f"{totals[m][0]:>11.3f}{totals[m][1]:>8.3f}" for m in modes)
    load = os.getloadavg()
    print(f"{'preprocess+detect':<22}{cells}  (sum of medians; load {load[0]:.1f})")
    ref_wall, ref_cpu = gaussian_reference(mammo.pixels)
    for m in modes:
        print(
            f"[{m}] preprocess+detect / ten Gaussian passes ({ref_wall:.3f} s, CPU "
            f"{ref_cpu:.3f} s, measured after): wall {totals[m][0] / ref_wall:.2f} x, "
            f"CPU {totals[m][1] / ref_cpu:.2f} x"
        )


def pool_share(mammo: Any, cfg: Any, repeat: int) -> None:
    """Print the share of preprocess+detect's CPU time (serial mode, this thread) spent
    in the strips that the detector's thread pool runs (``map_strips``): on an idle
    machine with two cores the pool saves at most half of it (Amdahl), whatever the load
    of a shared machine does to the wall times measured here."""
    from calcscope.detection import (
        bands,
        candidates,
        deposits,
        impulses,
        outline,
        parallel,
        scale_cnr,
    )
    from calcscope.detection.detect import detect
    from calcscope.imaging.preprocess import preprocess

    inside = [0.0]
    original = parallel.map_strips

    def timed(*args: Any, **kw: Any) -> Any:
        c = time.thread_time()
        out = original(*args, **kw)
        inside[0] += time.thread_time() - c
        return out

    mods = (bands, candidates, deposits, impulses, outline, scale_cnr)
    set_mode("serial")
    totals, pooled = [], []
    try:
        for m in mods:
            m.map_strips = timed  # type: ignore[attr-defined]
        for _ in range(repeat):
            inside[0] = 0.0
            c = time.thread_time()
            detect(mammo, preprocess(mammo, cfg.preprocess), cfg.detect)
            totals.append(time.thread_time() - c)
            pooled.append(inside[0])
    finally:
        for m in mods:
            m.map_strips = original  # type: ignore[attr-defined]
        set_mode("threads")
    total, pool = statistics.median(totals), statistics.median(pooled)
    print(
        f"preprocess+detect CPU (serial, this thread): {total:.3f} s, of which in the pool's "
        f"strips {pool:.3f} s ({100 * pool / total:.0f} %): on an idle 2-core machine the pool "
        f"saves at most {pool / 2:.3f} s of wall time"
    )


def profile(path: Path, spacing_mm: float | None, repeat: int, modes: list[str]) -> None:
    from calcscope.config import Config
    from calcscope.imaging.io import read_image
    from calcscope.pipeline import analyze, analyze_mammogram

    cfg = Config()
    mammo = read_image(path, spacing_mm=spacing_mm)
    rows, cols = mammo.shape
    print(f"\n== {path.name}: {cols} x {rows} px at {mammo.pixel_mm:.3f} mm")
    analyze(path, spacing_mm=spacing_mm)  # warm-up
    a = analysis_ratio(path, spacing_mm, mammo.pixels, repeat, modes)
    check_replay(mammo, cfg)
    step_profile(mammo, cfg, repeat, modes)
    pool_share(mammo, cfg, repeat)
    reports(analyze_mammogram(mammo, cfg) if spacing_mm is None else a, repeat)
    fresh_rss(path, spacing_mm, rows * cols)
    fresh_rss_steps(path, spacing_mm)


def reports(a: Any, repeat: int) -> None:
    """Time of the report model, SR, GSPS and overlay PNG."""
    from calcscope.reports.gsps import gsps_bytes
    from calcscope.reports.schema import overlay_png, to_report
    from calcscope.reports.sr import sr_bytes

    rep = to_report(a)
    n = len(rep.calcifications)
    for name, fn in (
        ("report model", lambda: to_report(a)),
        ("SR", lambda: sr_bytes(rep)),
        ("GSPS", lambda: gsps_bytes(rep)),
        ("overlay PNG", lambda: overlay_png(a)),
    ):
        fn()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        size = f"{len(out) / 1e6:.2f} MB" if isinstance(out, bytes) else ""
        print(f"report {name:<15}{statistics.median(times):>8.3f} s  {size}  ({n} calcs)")


def fresh_rss(path: Path, spacing_mm: float | None, n_px: int) -> None:
    """Peak RSS of a fresh process analysing ``path``, above its RSS after the imports."""
    # the peak is the kernel's high-water mark of this process image (VmHWM, reset by
    # exec); ru_maxrss would count the parent's pages that the child held between fork
    # and exec
    code = (
        "import json\n"
        "import calcscope.pipeline as p\n"
        "def status(key):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(key + ':'):\n"
        "            return int(line.split()[1]) * 1024\n"
        "base = status('VmRSS')\n"
        "from calcscope.config import Config\n"
        "from calcscope.detection.classifier import load_model\n"
        "load_model(Config().detect.model)\n"
        "model = status('VmRSS')\n"
        f"a = p.analyze({str(path)!r}, spacing_mm={spacing_mm!r})\n"
        "print(json.dumps({'base': base, 'model': model, 'peak': status('VmHWM')}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    extra, arrays = r["peak"] - r["base"], r["peak"] - r["model"]
    print(
        f"fresh process: RSS after import {r['base'] / 2**20:.0f} MiB, with the model loaded "
        f"{r['model'] / 2**20:.0f} MiB, peak {r['peak'] / 2**20:.0f} MiB; analysis above the "
        f"import {extra / 2**20:.0f} MiB = {extra / n_px:.1f} bytes/pixel, above the loaded "
        f"model {arrays / 2**20:.0f} MiB = {arrays / n_px:.1f} bytes/pixel"
    )


_RSS_STEPS = """
import json, sys, time
sys.path.insert(0, {bench!r})
import numpy as np
from profile_pipeline import Steps, detect_steps
from calcscope.config import Config
from calcscope.detection.classifier import load_model
from calcscope.imaging.io import read_image
from calcscope.imaging.preprocess import preprocess


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


class RssSteps(Steps):
    def run(self, name, fn, *args, **kw):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the present RSS
        out = fn(*args, **kw)
        self.mem[name] = (status("VmHWM"), status("VmRSS"))
        return out


cfg = Config()
load_model(cfg.detect.model)
model = status("VmRSS")
s = RssSteps(trace=False)
mammo = s.run("read", read_image, {path!r}, spacing_mm={spacing!r})
prep = s.run("preprocess", preprocess, mammo, cfg.preprocess)
detect_steps(mammo, prep, cfg, s)
n = mammo.pixels.size
print(json.dumps({{k: [(p - model) / n, (h - model) / n] for k, (p, h) in s.mem.items()}}))
"""


def fresh_rss_steps(path: Path, spacing_mm: float | None) -> None:
    """Per step, in a fresh process: the peak RSS during the step and the RSS after it,
    above the loaded model, in bytes per pixel (the kernel's high-water mark, reset
    before each step; Linux only)."""
    if not Path("/proc/self/clear_refs").exists():
        print("per-step RSS: needs Linux's /proc/self/clear_refs, skipped")
        return
    code = _RSS_STEPS.format(bench=str(Path(__file__).parent), path=str(path), spacing=spacing_mm)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    steps = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'step (fresh process)':<22}{'peak B/px':>10}{'held B/px':>10}  (above the model)")
    for k, (peak, held) in steps.items():
        print(f"{k:<22}{peak:>10.1f}{held:>10.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--film", type=Path, default=FILM)
    ap.add_argument(
        "--serial-too",
        action="store_true",
        help=f"also run with the detector's thread pool off ({THREADS_ENV}=1), interleaved",
    )
    args = ap.parse_args()
    modes = ["serial", "threads"] if args.serial_too else ["threads"]
    from calcscope.imaging import codec_checks
    from calcscope.imaging.io import write_image
    from calcscope.phantom.mammogram import make_phantom

    walk = "compiled" if getattr(codec_checks, "_packbits", None) is not None else "Python"
    print(
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} cv2 threads={cv2.getNumThreads()} "
        f"RLE PackBits walk={walk}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        ph = make_phantom(seed=0, spacing_mm=0.07)
        path = write_image(ph.mammogram, Path(tmp) / "phantom.dcm")
        del ph
        profile(path, None, args.repeat, modes)
    if args.film.exists():
        profile(args.film, 0.05, args.repeat, modes)
    else:
        print(f"{args.film}: not found, film skipped")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nthis process' max RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
