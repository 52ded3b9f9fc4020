"""Measure how often ``calcscope.reading.describe`` names phantom findings as they were inserted.

Usage::

    python scripts/describe_accuracy.py [--seeds 100-139] [--spacing 0.07 0.1]
        [--shape 1500 1200] [--jobs 2] [--cache .cache/describe-accuracy]

What it does
------------
For every requested spacing and seed it makes synthetic mammograms
(:func:`calcscope.phantom.mammogram.make_phantom`) and runs the whole pipeline
(:func:`calcscope.pipeline.analyze_mammogram`) on each:

* morphology cases: one GROUPED cluster of each of the 7 ``CLUSTER_MORPHOLOGIES``, no
  macro patterns, no isolated specks;
* distribution cases: one cluster in each of the GROUPED, LINEAR, SEGMENTAL and REGIONAL
  distributions (the member morphology cycles over the cluster morphologies with the
  seed; 12 members, 20 for REGIONAL and SEGMENTAL), and 30 calcifications scattered
  over the whole breast (DIFFUSE; punctate, round or amorphous by seed), whose answer
  is the distribution of the reported cluster nearest their centre;
* macro cases: one phantom per pattern of ``MACRO_PATTERNS``, no clusters.

Matching
--------
* A true cluster is matched by the detected cluster nearest its centre when that centre
  lies within the cluster's radius + 2 mm (the rule of
  :func:`calcscope.evaluation.phantom_study.score_phantom`).
* A true macro pattern is matched by the reported :class:`~calcscope.reading.describe.MacroFinding`
  objects whose centres lie within ``max(extent, 5 mm)`` of its centre (extent: farthest
  piece end from the centre). Their majority pattern (ties: the nearest finding) is the
  answer. A macro pattern whose pieces were grouped as a cluster instead is reported as
  ``cluster:<morphology>``.

Output: a confusion table per task (rows: truth, columns: answer; ``missed`` when nothing
was matched) and the per-class accuracy, counting a missed finding as wrong and, in
brackets, the accuracy among the matched ones. PUNCTATE and ROUND are also scored merged,
as the BI-RADS 5th edition does (punctate = round < 0.5 mm). Then, per task, the BI-RADS
category given to each inserted class (the matched cluster's; for a macro pattern the
worst of the findings at it), which weighs the confusions clinically.

The seeds of ``tests/reading/test_describe.py`` are 0-9; keep these disjoint (default 100-139:
about 7 minutes on 2 cores without the cache; with 100-109 alone, some classes were up to
25 points off their 40-seed figure).
``--cache DIR`` keeps each phantom's truth and its preprocessing and detector outputs
(keyed by a hash of the detector models and of the detection, preprocessing and
configuration code), so that changes to the description rules can be measured again in
seconds; the stages after detection always run.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import calcscope.pipeline as pipeline
from calcscope.config import Config
from calcscope.detection.classifier import model_files
from calcscope.model import Distribution, Mammogram, Morphology
from calcscope.phantom.mammogram import (
    CLUSTER_MORPHOLOGIES,
    MACRO_PATTERNS,
    ClusterSpec,
    Phantom,
    PhantomTruth,
    make_phantom,
)
from calcscope.pipeline import Analysis

DISTRIBUTIONS = (
    Distribution.GROUPED,
    Distribution.LINEAR,
    Distribution.SEGMENTAL,
    Distribution.REGIONAL,
    Distribution.DIFFUSE,
)
#: Member forms of the diffuse cases: those the atlas describes as diffuse.
DIFFUSE_FORMS = (Morphology.PUNCTATE, Morphology.ROUND, Morphology.AMORPHOUS)
MERGED = {Morphology.PUNCTATE: Morphology.ROUND}


@dataclass(frozen=True)
class Case:
    task: str  # "morphology", "distribution" or "macro"
    truth: str  # the inserted class
    seed: int
    spacing_mm: float
    shape: tuple[int, int]

    @property
    def key(self) -> str:
        rows, cols = self.shape
        return f"{self.task}-{self.truth}-{self.seed}-{self.spacing_mm}-{rows}x{cols}"


def make_case(case: Case) -> Phantom:
    """The phantom of one case (deterministic in the case's fields)."""
    common = dict(
        seed=case.seed, spacing_mm=case.spacing_mm, shape=case.shape, n_singles=0, macros=[]
    )
    if case.task == "morphology":
        spec = ClusterSpec(Morphology(case.truth), Distribution.GROUPED, n=8 + case.seed % 5)
        return make_phantom(clusters=[spec], **common)
    if case.task == "distribution":
        dist = Distribution(case.truth)
        morph = CLUSTER_MORPHOLOGIES[case.seed % len(CLUSTER_MORPHOLOGIES)]
        n = 20 if dist in (Distribution.REGIONAL, Distribution.SEGMENTAL) else 12
        if dist is Distribution.DIFFUSE:
            morph, n = DIFFUSE_FORMS[case.seed % len(DIFFUSE_FORMS)], 30
        return make_phantom(clusters=[ClusterSpec(morph, dist, n=n)], **common)
    common["macros"] = [Morphology(case.truth)]
    return make_phantom(clusters=[], **common)


def _model_hash() -> str:
    """Hash of what the cached stages depend on: the detector models and code."""
    import calcscope.config as config_module
    import calcscope.detection as detection_package
    import calcscope.imaging.preprocess as preprocess_module

    h = hashlib.sha1()
    for path in model_files(Config().detect.model):
        h.update(path.read_bytes())
    # every module of the detector (detect.py runs stages that live beside it)
    for path in sorted(Path(str(detection_package.__file__)).parent.glob("*.py")):
        h.update(path.read_bytes())
    for module in (preprocess_module, config_module):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()[:12]


def _analyze(case: Case, cache: Path | None) -> tuple[PhantomTruth, Mammogram, Analysis]:
    """Make and analyse the phantom of ``case``; with ``cache``, the phantom's truth and
    the preprocessing and detector outputs are read from (or written to) it, so only the
    stages after detection run again."""
    path = cache / f"{case.key}-{_model_hash()}.pkl.gz" if cache else None
    if path is not None and path.exists():
        truth, mammo, prep, det = pickle.loads(zlib.decompress(path.read_bytes()))
    else:
        phantom = make_case(case)
        mammo = phantom.mammogram
        truth = replace(phantom.truth, breast_mask=None, pectoral_mask=None)
        prep = pipeline.preprocess(mammo, Config().preprocess)
        det = pipeline.detect(mammo, prep, Config().detect)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            light = replace(mammo, pixels=np.zeros((1, 1), np.float32))
            path.write_bytes(zlib.compress(pickle.dumps((truth, light, prep, det))))
    real = pipeline.preprocess, pipeline.detect
    pipeline.preprocess = lambda *_a, **_k: prep
    pipeline.detect = lambda *_a, **_k: det
    try:
        analysis = pipeline.analyze_mammogram(mammo, Config())
    finally:
        pipeline.preprocess, pipeline.detect = real
    return truth, mammo, analysis


def run_case(case: Case, cache: Path | None = None) -> tuple[Case, str, list[str], str]:
    """Analyse one case; returns it, the answer, the reasons given for it and the BI-RADS
    category of the matched finding ("missed" when none matched)."""
    truth, mammo, analysis = _analyze(case, cache)
    scale = np.array(mammo.spacing_mm)
    if case.task in ("morphology", "distribution"):
        k = truth.clusters[0]
        if not analysis.clusters:
            return case, "missed", [], "missed"
        centres = np.array([f.cluster.center_rc for f in analysis.clusters]) * scale
        d = np.sqrt(((centres - np.array(k.center_rc) * scale) ** 2).sum(1))
        j = int(np.argmin(d))
        if d[j] > k.radius_mm + 2.0:
            return case, "missed", [], "missed"
        desc = analysis.clusters[j].description
        answer = desc.morphology if case.task == "morphology" else desc.distribution
        category = analysis.clusters[j].assessment.category.value
        return case, answer.value, list(desc.reasons), category
    m = truth.macros[0]
    centre = np.array(m.center_rc) * scale
    by_id = {t.id: t for t in truth.calcifications}
    extent = max(
        float(np.sqrt(((np.array(by_id[i].center_rc) * scale - centre) ** 2).sum()))
        + by_id[i].length_mm / 2
        for i in m.member_ids
    )
    radius = max(extent, 5.0)
    near = []
    for r in analysis.macros:
        dist = float(np.sqrt(((np.array(r.finding.center_rc) * scale - centre) ** 2).sum()))
        if dist <= radius:
            near.append((dist, r))
    # a cluster formed at the pattern (its fragments) sets the category when it is worse
    at_pattern = [
        f
        for f in analysis.clusters
        if float(np.sqrt(((np.array(f.cluster.center_rc) * scale - centre) ** 2).sum())) <= radius
    ]
    worst = max(
        [r.assessment for _, r in near] + [f.assessment for f in at_pattern],
        key=lambda a: (a.category.rank, a.likelihood),
        default=None,
    )
    category = "missed" if worst is None else worst.category.value
    if near:
        votes = Counter(r.finding.pattern for _, r in near)
        top = max(votes.values())
        best = min(
            (dd, r.finding.pattern.value) for dd, r in near if votes[r.finding.pattern] == top
        )
        nearest = min(near, key=lambda x: x[0])[1]
        return case, best[1], list(nearest.finding.reasons), category
    for f in at_pattern:
        answer = f"cluster:{f.description.morphology.value}"
        return case, answer, list(f.description.reasons), category
    return case, "missed", [], category


def _run(args: tuple[Case, Path | None]) -> tuple[Case, str, list[str], str]:
    return run_case(*args)


def confusion(
    results: Sequence[tuple[Case, str, list[str], str]], task: str, spacing: float
) -> str:
    rows = [(c.truth, a) for c, a, _, _ in results if c.task == task and c.spacing_mm == spacing]
    if not rows:
        return ""
    truths = list(dict.fromkeys(t for t, _ in rows))
    answers = sorted({a for _, a in rows} | set(truths), key=lambda a: (a not in truths, a))
    table: dict[str, Counter] = defaultdict(Counter)
    for t, a in rows:
        table[t][a] += 1
    w = max(len(a) for a in answers + truths) + 1
    out = [f"\n{task} at {spacing} mm/pixel (rows: inserted, columns: answer)"]
    short = [a[:10] for a in answers]
    out.append(" " * w + " ".join(f"{s:>10}" for s in short) + "   accuracy (among found)")
    total = ok_all = 0
    for t in truths:
        n = sum(table[t].values())
        ok = table[t][t]
        found = n - table[t]["missed"]
        total += n
        ok_all += ok
        acc_found = f"{ok / found:.0%}" if found else "-"
        cells = " ".join(f"{table[t][a] or '.':>10}" for a in answers)
        out.append(f"{t:<{w}}{cells}   {ok}/{n} = {ok / n:.0%} ({acc_found})")
    out.append(
        f"{'overall':<{w}}{'':>{11 * len(answers)}}  {ok_all}/{total} = {ok_all / total:.0%}"
    )
    if task == "morphology":
        merged = sum(_merged(t) == _merged(a) for t, a in rows)
        out.append(f"{'(punctate = round)':<{w}}{'':>{11 * len(answers)}}  {merged}/{total}")
    return "\n".join(out)


CATEGORY_ORDER = ("1", "2", "3", "0", "4A", "4B", "4C", "5", "missed")


def categories(results: Sequence[tuple[Case, str, list[str], str]], task: str) -> str:
    """Counts of the BI-RADS category given to each inserted class (all spacings): the
    clinical weight of the confusions (a suspicious form called benign, or the reverse)."""
    rows = [(c.truth, cat) for c, _, _, cat in results if c.task == task]
    if not rows:
        return ""
    truths = list(dict.fromkeys(t for t, _ in rows))
    table: dict[str, Counter] = defaultdict(Counter)
    for t, cat in rows:
        table[t][cat] += 1
    cols = [c for c in CATEGORY_ORDER if any(table[t][c] for t in truths)]
    w = max(len(t) for t in truths) + 1
    out = [f"\n{task}: BI-RADS category of the matched finding, all spacings"]
    out.append(" " * w + " ".join(f"{c:>7}" for c in cols))
    for t in truths:
        out.append(f"{t:<{w}}" + " ".join(f"{table[t][c] or '.':>7}" for c in cols))
    return "\n".join(out)


def _merged(value: str) -> str:
    values = {m.value for m in Morphology}
    return MERGED.get(Morphology(value), Morphology(value)).value if value in values else value


def _seed_range(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="100-139", help="seed range a-b or list a,b,c")
    p.add_argument("--spacing", type=float, nargs="+", default=[0.07, 0.1])
    p.add_argument(
        "--shape", type=int, nargs=2, default=None, help="rows cols (default by spacing)"
    )
    p.add_argument("--tasks", nargs="+", default=["morphology", "distribution", "macro"])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--verbose", action="store_true", help="print the reasons of wrong answers")
    args = p.parse_args(argv)
    seeds = _seed_range(args.seeds)
    cases = []
    for sp in args.spacing:
        shape = tuple(args.shape) if args.shape else (round(150 / sp), round(120 / sp))
        classes = {
            "morphology": [m.value for m in CLUSTER_MORPHOLOGIES],
            "distribution": [d.value for d in DISTRIBUTIONS],
            "macro": [m.value for m in MACRO_PATTERNS],
        }
        for task in args.tasks:
            for truth in classes[task]:
                cases += [Case(task, truth, s, sp, shape) for s in seeds]  # type: ignore[arg-type]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_run, [(c, args.cache) for c in cases], chunksize=2))
    for sp in args.spacing:
        for task in args.tasks:
            print(confusion(results, task, sp))
    for task in args.tasks:
        print(categories(results, task))
    if args.verbose:
        print("\nwrong answers:")
        for c, a, reasons, _ in results:
            if a != c.truth:
                print(f"  {c.key}: {a}: {' | '.join(reasons)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
