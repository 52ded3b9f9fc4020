"""Hostile input through ``calcscope analyze``, ``calcscope batch`` and the DICOM node: four
counts, all 0.

Usage: ``python benchmarks/bench_fuzz.py [--n 10000] [--chunk 500] [--no-analyze] [--no-batch]
[--node-sample 1000] [--node-budget-s S] [--work DIR]``; ``--frames 200`` instead measures
only corrupt compressed frames (200 per syntax,
:func:`calcscope.evaluation.hostile.compressed_cases`), each analysed in this process, and
prints the outcome per syntax and every silent different answer; ``--in-process RLE [--what
"bytes flipped"]`` analyses in this process the compressed cases of the ``--n`` run (the same
files ``h<k>``) whose syntax starts with ``RLE`` (and whose description holds ``--what``),
and prints the same.

Writes about ``--n`` hostile files (:mod:`calcscope.evaluation.hostile`: implausible header
values, wrong VRs, flipped bytes, truncation, corrupt RLE / JPEG-LS / JPEG 2000 fragments,
corrupt PNG/TIFF/PGM, FIFOs, link loops, links to /dev/zero), each followed by a clean copy
of a small mammogram that calcscope calls BI-RADS 4C, runs them through the CLI in chunks
(and a sample of the DICOM files, each with its own SOP Instance UID, through a node by C-STORE),
and prints, per surface and per family:

* **tracebacks**: Python tracebacks printed, or an exit code other than 0 and 1;
* **hangs**: a chunk that did not finish within ``--timeout-s``;
* **silent different answers**: a hostile file reported with another category or cluster
  count than the clean file, instead of an error;
* **lost good files**: a clean copy that was not analysed, or not with the clean answer.

Exit code 1 when any count is not 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from calcscope.apps.send import wait_for_echo
from calcscope.evaluation.hostile import (
    Answer,
    Case,
    Family,
    clean_answer,
    clean_dicom,
    compressed_cases,
    iter_cases,
    make_cases,
)

RASTER_SPACING_MM = 0.1


def _chunks(cases: list[Case], size: int) -> list[list[Case]]:
    return [cases[i : i + size] for i in range(0, len(cases), size)]


def _stage(cases: list[Case], src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for c in cases:
        for name in (c.name, c.good):
            if name:
                os.rename(src / name, dst / name)


def _run(cmd: list[str], timeout_s: float) -> tuple[int | None, str]:
    try:
        # errors="replace": a run's output may quote a corrupt file's bytes (not UTF-8)
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raw = exc.stderr
        err = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
        return None, err
    return p.returncode, p.stderr + p.stdout


def _json_answer(path: Path) -> Answer | None:
    if not path.exists():
        return None
    rep = json.loads(path.read_text())
    return Answer(rep["assessment"]["category"], len(rep["clusters"]))


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, surface: str, key: str, example: str = "") -> None:
        self.counts[surface][key] += 1
        if example and len(self.examples[f"{surface}:{key}"]) < 5:
            self.examples[f"{surface}:{key}"].append(example)

    def bad(self) -> int:
        keys = ("traceback", "hang", "silent different answer", "lost good file")
        return sum(c[k] for c in self.counts.values() for k in keys)


def _judge(
    tally: Tally,
    surface: str,
    c: Case,
    got: Answer | None,
    failed: bool,
    good: Answer | None,
    clean: Answer,
) -> None:
    if got is not None:
        key = "same answer" if got == clean else "silent different answer"
        tally.add(surface, key, f"{c.name} ({c.what}): {got}")
        tally.add(surface, f"{c.family.value}: {key}")
    elif failed:
        tally.add(surface, "clear error")
        tally.add(surface, f"{c.family.value}: clear error")
    elif c.what == "a folder named like an image":  # searched like any folder: empty
        tally.add(surface, "clear error")
    else:
        tally.add(surface, "no output, no error", f"{c.name} ({c.what})")
    if c.good and good != clean:
        tally.add(surface, "lost good file", f"{c.good} after {c.name} ({c.what}): {good}")


#: Arguments after ``--out DIR`` for each CLI command the run goes through.
_CLI_OPTIONS = {"analyze": ["--no-overlay"], "batch": ["--workers", "2"]}


def run_cli(
    command: str,
    chunks: list[Path],
    cases: dict[str, list[Case]],
    clean: Answer,
    tally: Tally,
    timeout_s: float,
) -> None:
    """Run ``calcscope <command>`` (``analyze`` or ``batch``) on each chunk folder and tally
    its hangs, tracebacks and answers under the surface ``command``."""
    for folder in chunks:
        out = folder.with_name(f"{folder.name}-{command}")
        raster = any(c.family is Family.RASTER for c in cases[folder.name])
        cmd = [sys.executable, "-m", "calcscope", command, str(folder), "--out", str(out)]
        cmd += _CLI_OPTIONS[command]
        if raster:
            cmd += ["--spacing-mm", str(RASTER_SPACING_MM)]
        rc, text = _run(cmd, timeout_s)
        if rc is None:
            tally.add(command, "hang", f"{folder.name}: no answer in {timeout_s:.0f} s")
            continue
        n_tb = text.count("Traceback (most recent call last)")
        if n_tb or rc not in (0, 1):
            tally.add(command, "traceback", f"{folder.name}: exit {rc}, {n_tb} tracebacks")
        answer = _batch_answers(out) if command == "batch" else _analyze_answers(out, text)
        for c in cases[folder.name]:
            got, failed = answer(c.name)
            good = answer(c.good)[0] if c.good else clean
            _judge(tally, command, c, got, failed, good, clean)


def _analyze_answers(out: Path, text: str) -> Callable[[str], tuple[Answer | None, bool]]:
    """A file's answer in ``calcscope analyze``'s output folder ``out`` (its JSON report),
    and whether the run's output ``text`` names it as failed."""

    def answer(name: str) -> tuple[Answer | None, bool]:
        failed = f"{name}:" in text or f"{name} " in text
        return _json_answer(out / f"{Path(name).stem}.json"), failed

    return answer


def _batch_answers(out: Path) -> Callable[[str], tuple[Answer | None, bool]]:
    """A file's answer in ``calcscope batch``'s ``images.csv`` under ``out``, and whether
    the batch reports it as failed."""
    rows: dict[str, dict[str, str]] = {}
    csv.field_size_limit(2**31 - 1)  # a long message must not stop the count
    images_csv = out / "images.csv"
    if images_csv.exists():
        with images_csv.open(newline="") as fh:
            rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}

    def answer(name: str) -> tuple[Answer | None, bool]:
        r = rows.get(name)
        if r is None:
            return None, False
        if r["status"] != "ok":
            return None, True
        return Answer(r["category"], int(r["n_clusters"])), False

    return answer


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_node(out: Path, port: int, aet: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "calcscope",
        "node",
        "--out",
        str(out),
        "--port",
        str(port),
        "--ae-title",
        aet,
        "--no-dicom-reports",
        "--workers",
        "2",
        "--timeout-s",
        "120",
    ]
    # stderr to a file: a pipe read only at the end fills (64 KiB of log lines) and then
    # blocks every thread of the node that logs (the node stops; not the node's fault)
    with open(out.parent / "node-stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    if wait_for_echo("127.0.0.1", port, aet, calling_ae_title="FUZZER", interval_s=0.3):
        return proc
    proc.kill()
    raise RuntimeError("the node did not start")


OUT_OF_RESOURCES = 0xA700  # the node's queue stayed full: a modality retries later


def _sendable(path: Path, uid: str, study: str | None, clean_study: str) -> object | None:
    """The file as a dataset with a fresh SOP Instance UID (and ``study`` as its Study
    Instance UID where it had the clean file's: each hostile file and its good file make a
    study of their own, as a department's node sees them, instead of one study of
    thousands of images), or None when the sender's own parser refuses it (such a file
    never reaches a node)."""
    import pydicom
    from pydicom import config as dicom_config

    s = dicom_config.settings
    old = s.reading_validation_mode
    s.reading_validation_mode = dicom_config.IGNORE
    try:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        if study is not None and str(ds.get("StudyInstanceUID", "")) == clean_study:
            ds.StudyInstanceUID = study
        _ = ds.SOPClassUID, ds.file_meta.TransferSyntaxUID
        return ds
    except Exception:  # noqa: BLE001 - unparseable or without file meta: not sendable
        return None
    finally:
        s.reading_validation_mode = old


def _store(ae: Any, ds: Any, port: int, aet: str, retry_s: float = 600.0) -> int | None:
    """C-STORE ``ds`` on an association of its own; the node's status (0 = accepted), or
    None when no association could carry it (a SOP class or transfer syntax UID that is not
    ASCII cannot even be proposed: the sender refuses it, as a real modality would, and the
    node never sees the file). ``0xA700`` (the node's queue stayed full) is retried, as a
    modality does, for at most ``retry_s`` seconds."""
    uids = (str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
    if not all(u.isascii() for u in uids):
        return None
    ae.requested_contexts = []
    ae.add_requested_context(*uids[:1], [uids[1]])
    deadline = time.monotonic() + retry_s
    while True:
        try:
            assoc = ae.associate("127.0.0.1", port, ae_title=aet)
        except Exception:  # noqa: BLE001 - the sender's encoder refused the request
            return None
        if not assoc.is_established:
            return None
        try:
            status = assoc.send_c_store(ds)
        except Exception:  # noqa: BLE001 - the sender's encoder refused the data set
            return None
        finally:
            if assoc.is_established:
                assoc.release()
        code = int(status.Status) if "Status" in status else None
        if code != OUT_OF_RESOURCES or time.monotonic() > deadline:
            return code
        time.sleep(1.0)


def _pick(
    folders: list[Path], cases: dict[str, list[Case]], sample: int
) -> list[tuple[Path, Case]]:
    """Up to ``sample`` DICOM cases (every family but raster and special), spread evenly."""
    picked = [
        (f, c)
        for f in folders
        for c in cases[f.name]
        if c.family is not Family.RASTER and c.family is not Family.SPECIAL
    ]
    step = max(1, len(picked) // max(sample, 1))
    return picked[::step][:sample]


def _wait_done(done_dir: Path, accepted: set[str], stall_s: float, deadline: float) -> set[str]:
    """Wait until every accepted image has its commit marker (``done/<uid>``), polling the
    folder every 0.1 s; give up when none was added for ``stall_s`` or at ``deadline``.
    Returns the accepted UIDs without a marker (hangs)."""
    left = set(accepted)
    last_progress = time.monotonic()
    while left and time.monotonic() < deadline:
        finished = {u for u in left if (done_dir / u).exists()}
        if finished:
            left -= finished
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > stall_s:
            break
        else:
            time.sleep(0.1)
    return left


def _send_all(
    picked: list[tuple[Path, Case]],
    port: int,
    aet: str,
    clean_study: str,
    out: Path,
    budget_s: float,
) -> tuple[list[tuple[Case, str | None, str | None]], set[str]]:
    """Send each hostile file, then its good file (both in a study of their own), until
    ``budget_s`` seconds have passed (0: no limit); the UIDs the node answered for (None:
    never reached it) and the UIDs it accepted."""
    import warnings

    from pydicom.uid import generate_uid
    from pynetdicom import AE

    # pydicom warns when it re-encodes a hostile element (e.g. a huge value as UN)
    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")

    ae = AE(ae_title="FUZZER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    sent: list[tuple[Case, str | None, str | None]] = []
    accepted: set[str] = set()
    t0 = time.perf_counter()
    for k, (folder, c) in enumerate(picked, 1):
        if budget_s and time.perf_counter() - t0 > budget_s:
            print(f"  node: time budget of {budget_s:.0f} s spent after {k - 1} pairs")
            break
        bad_uid, good_uid, study = generate_uid(), generate_uid(), generate_uid()
        bad = _sendable(folder / c.name, bad_uid, study, clean_study)
        good = _sendable(folder / c.good, good_uid, study, clean_study) if c.good else None
        stored: list[str | None] = []
        for ds, uid in ((bad, bad_uid), (good, good_uid)):
            status = _store(ae, ds, port, aet) if ds is not None else None
            stored.append(uid if status is not None else None)
            if status == 0:
                accepted.add(uid)
        sent.append((c, stored[0], stored[1]))
        if k % 500 == 0:
            n_done = sum(1 for _ in (out / "done").iterdir())
            dt = time.perf_counter() - t0
            print(f"  node: {k} pairs sent, {n_done} images done, {dt:.0f} s", flush=True)
    return sent, accepted


def run_node(
    folders: list[Path],
    cases: dict[str, list[Case]],
    clean: Answer,
    tally: Tally,
    sample: int,
    timeout_s: float,
    budget_s: float = 0.0,
) -> tuple[int, float]:
    """Send up to ``sample`` hostile DICOM files, each followed by a clean one, to a node;
    returns how many, and the seconds from the first C-STORE to the last image's commit.

    An image the node accepted (C-STORE status 0) must get its commit marker: one that has
    none when the node made no progress for ``min(timeout_s, 300)`` s is a hang (and, for a good
    file, a lost good file too). One refused at C-STORE (a failure status) is a clear error.
    """
    import pydicom

    picked = _pick(folders, cases, sample)
    first_good = next((f / c.good for f, c in picked if c.good), None)
    clean_study = ""
    if first_good is not None:
        clean_study = str(pydicom.dcmread(first_good, stop_before_pixels=True).StudyInstanceUID)
    out = folders[0].parent / "node-out"
    port, aet = _free_port(), "FUZZNODE"
    proc = _start_node(out, port, aet)
    try:
        t0 = time.perf_counter()
        sent, accepted = _send_all(picked, port, aet, clean_study, out, budget_s)
        stall_s = min(timeout_s, 300.0)  # the node's own time limit is 120 s an image
        hung = _wait_done(out / "done", accepted, stall_s, time.monotonic() + 10 * timeout_s)
        seconds = time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err = (out.parent / "node-stderr.txt").read_bytes()
    _judge_node(tally, out, err, sent, hung, clean)
    return len(sent), seconds


def _judge_node(
    tally: Tally,
    out: Path,
    err: bytes | None,
    sent: list[tuple[Case, str | None, str | None]],
    hung: set[str],
    clean: Answer,
) -> None:
    text = err.decode(errors="replace") if err else ""
    if "Traceback (most recent call last)" in text:
        tally.add("node", "traceback", text[text.index("Traceback") :][:300])
    log = out / "node.log"
    if log.exists() and "Traceback (most recent call last)" in log.read_text(errors="replace"):
        tally.add("node", "traceback", "in node.log")

    def answer(uid: str | None) -> tuple[Answer | None, bool]:
        if uid is None:
            return None, True  # refused by the sender's parser: never reached the node
        folder = out / "results" / uid
        if (folder / "analysis.json").exists():
            return _json_answer(folder / "analysis.json"), False
        # refused at C-STORE (no folder) or recorded as failed (error.json)
        return None, (folder / "error.json").exists() or not folder.exists()

    for c, bad_uid, good_uid in sent:
        if bad_uid in hung:
            tally.add("node", "hang", f"{c.name} ({c.what}): accepted, never finished")
            continue
        got, failed = answer(bad_uid)
        good = answer(good_uid)[0] if c.good and good_uid not in hung else None
        _judge(tally, "node", c, got, failed, good if c.good else clean, clean)


def print_surface(tally: Tally, surface: str) -> None:
    """The counts of one surface, printed as soon as it is done (flushed)."""
    counts = tally.counts[surface]
    print(f"\n{surface}:")
    for key in (
        "traceback",
        "hang",
        "silent different answer",
        "lost good file",
        "clear error",
        "same answer",
        "no output, no error",
    ):
        print(f"  {key:26s} {counts[key]}")
    for key in sorted(k for k in counts if ": " in k):
        print(f"    {key:40s} {counts[key]}")
    for key, ex in tally.examples.items():
        if key.startswith(f"{surface}:"):
            print(f"  {key}:")
            for line in ex:
                print(f"    {line}")
    sys.stdout.flush()


def run_frames(n_per_syntax: int, seed: int) -> int:
    """Corrupt compressed frames through :func:`calcscope.pipeline.analyze` in this process:
    per syntax, clear errors, clean answers and silent different answers (listed)."""
    data = clean_dicom(seed)
    cases = enumerate(compressed_cases(n_per_syntax, seed=seed, clean=data))
    return _in_process(((f"case {k}", what, blob) for k, (what, blob) in cases), data)


def run_in_process(n: int, seed: int, syntax: str, what: str) -> int:
    """The compressed cases of the ``--n`` run (files ``h<k>``) whose description starts
    with ``syntax`` and holds ``what``, through :func:`calcscope.pipeline.analyze` in this
    process (the others are made, to keep the run's random sequence, but not analysed)."""
    data = clean_dicom(seed)
    picked = (
        (f"h{k:05d}", w, d)
        for k, (family, _, w, d) in enumerate(iter_cases(n=n, seed=seed, clean=data))
        if family is Family.COMPRESSED and w.startswith(syntax) and what in w
    )
    return _in_process(picked, data)


def _in_process(cases: Iterator[tuple[str, str, bytes]], data: bytes) -> int:
    from calcscope.errors import CalcscopeError
    from calcscope.pipeline import analyze

    clean = clean_answer(data)
    table: dict[str, Counter[str]] = defaultdict(Counter)
    silent = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case.dcm"
        for name, what, blob in cases:
            syntax = what.split(":")[0]
            path.write_bytes(blob)
            try:
                a = analyze(path)
            except CalcscopeError:
                table[syntax]["clear error"] += 1
                continue
            except BaseException as exc:  # noqa: BLE001 - counted, never raised
                table[syntax][f"traceback ({type(exc).__name__})"] += 1
                continue
            got = Answer(a.assessment.category.value, len(a.clusters))
            key = "clean answer" if got == clean else "silent different answer"
            table[syntax][key] += 1
            if got != clean:
                silent.append(f"{name}, {what}: {got}")
    print("| syntax | clear error | clean answer | silent different answer |")
    print("|---|---|---|---|")
    for syntax, c in table.items():
        row = (c["clear error"], c["clean answer"], c["silent different answer"])
        print(f"| {syntax} | {row[0]} | {row[1]} | {row[2]} |")
    print("\n".join(silent))
    return 1 if silent else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000, help="hostile files to make")
    ap.add_argument("--chunk", type=int, default=500, help="hostile files per CLI run")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="per CLI run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-analyze", action="store_true", help="skip `calcscope analyze`")
    ap.add_argument("--no-batch", action="store_true", help="skip `calcscope batch`")
    ap.add_argument(
        "--node-sample",
        type=int,
        default=1000,
        help="hostile DICOM files sent to a node (0: skip the node)",
    )
    ap.add_argument(
        "--node-budget-s",
        type=float,
        default=0.0,
        help="stop sending to the node after so many seconds (0: send the whole sample)",
    )
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: temp)")
    ap.add_argument(
        "--frames",
        type=int,
        default=0,
        help="only corrupt compressed frames, this many per syntax, analysed in-process",
    )
    ap.add_argument(
        "--in-process",
        default="",
        metavar="SYNTAX",
        help="only the compressed cases of --n whose syntax starts with this (e.g. RLE), "
        "analysed in-process",
    )
    ap.add_argument("--what", default="", help="with --in-process: only cases saying this")
    args = ap.parse_args()
    if args.frames:
        return run_frames(args.frames, args.seed)
    if args.in_process:
        return run_in_process(args.n, args.seed, args.in_process, args.what)

    work = args.work or Path(tempfile.mkdtemp(prefix="calcscope-fuzz-"))
    t0 = time.perf_counter()
    data = clean_dicom(args.seed)
    clean = clean_answer(data)
    print(f"clean file: BI-RADS {clean.category}, {clean.n_clusters} cluster(s)")
    pool = work / "pool"
    cases = make_cases(pool, n=args.n, seed=args.seed, clean=data)
    print(
        f"{len(cases)} hostile files in {time.perf_counter() - t0:.0f} s: "
        + ", ".join(f"{k} {v}" for k, v in Counter(c.family.value for c in cases).items())
    )
    # raster files need a spacing: they run in chunks of their own
    groups = [
        [c for c in cases if c.family is not Family.RASTER],
        [c for c in cases if c.family is Family.RASTER],
    ]
    by_chunk: dict[str, list[Case]] = {}
    folders: list[Path] = []
    for g in groups:
        for part in _chunks(g, args.chunk):
            folder = work / f"chunk{len(folders):03d}"
            _stage(part, pool, folder)
            by_chunk[folder.name] = part
            folders.append(folder)
    tally = Tally()
    t1 = time.perf_counter()
    if not args.no_analyze:
        run_cli("analyze", folders, by_chunk, clean, tally, args.timeout_s)
        print(f"analyze: {time.perf_counter() - t1:.0f} s")
        print_surface(tally, "analyze")
    if not args.no_batch:
        t1 = time.perf_counter()
        run_cli("batch", folders, by_chunk, clean, tally, args.timeout_s)
        print(f"batch: {time.perf_counter() - t1:.0f} s")
        print_surface(tally, "batch")
    if args.node_sample:
        t1 = time.perf_counter()
        n_node, sent_s = run_node(
            folders, by_chunk, clean, tally, args.node_sample, args.timeout_s, args.node_budget_s
        )
        print(
            f"node: {time.perf_counter() - t1:.0f} s in all; {n_node} hostile files (each with "
            f"its good file) from the first C-STORE to the last commit in {sent_s:.0f} s, "
            f"{sent_s / max(n_node, 1):.2f} s per pair"
        )
        print_surface(tally, "node")
    print(f"\nworking folder: {work}")
    return 1 if tally.bad() else 0


if __name__ == "__main__":
    sys.exit(main())
