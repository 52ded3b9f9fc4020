"""Batch over an archive with Dask: atomic per-image folders, resumable, same summary."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip(
    "distributed", reason="Dask distributed missing: pip install 'calcscope[batch]'"
)

from calcscope.apps.batch import (  # noqa: E402
    BREAST_COLUMNS,
    DONE,
    IMAGE_COLUMNS,
    SUMMARY_COLUMNS,
    image_id,
    run_batch,
)
from calcscope.apps.cli import main  # noqa: E402
from calcscope.imaging.io import write_image  # noqa: E402
from calcscope.phantom.mammogram import make_phantom  # noqa: E402

N_DISTINCT = 6
N_COPIES = 4  # 24 images


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 small phantom DICOMs in two sub-folders, plus a corrupt file."""
    root = tmp_path_factory.mktemp("archive")
    for seed in range(N_DISTINCT):
        ph = make_phantom(seed=seed, spacing_mm=0.2, shape=(600, 480))
        first = write_image(ph.mammogram, root / "a" / f"p{seed}.dcm")
        for k in range(1, N_COPIES):
            target = root / ("a" if k % 2 else "b") / f"p{seed}_{k}.dcm"
            target.parent.mkdir(exist_ok=True)
            shutil.copy(first, target)
    (root / "b" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 10)
    return root


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def clean_run(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    res = run_batch(archive, out, workers=2, processes=False, show_progress=False)
    assert res.n_images == N_DISTINCT * N_COPIES + 1
    assert res.n_analysed == N_DISTINCT * N_COPIES and res.n_failed == 1
    return out


def test_layout_summary_and_error_record(clean_run: Path, archive: Path) -> None:
    out = clean_run
    rows = _read(out / "summary.csv")
    assert rows and tuple(rows[0]) == SUMMARY_COLUMNS
    images = _read(out / "images.csv")
    assert tuple(images[0]) == IMAGE_COLUMNS and len(images) == N_DISTINCT * N_COPIES + 1
    with (
        out / "breasts.csv"
    ).open() as fh:  # cross-view pairs (none: no study has both views here)
        assert fh.readline().strip().split(",") == list(BREAST_COLUMNS)
    keys = [r["image"] for r in images]
    assert keys == sorted(keys) and "a__p0.dcm" in keys and "b__p1_2.dcm" in keys
    # one row per cluster, matching each image's JSON report
    for img in images:
        folder = out / img["image"]
        assert (folder / DONE).exists()
        if img["status"] == "ok":
            report = json.loads((folder / "analysis.json").read_text())
            mine = [r for r in rows if r["image"] == img["image"]]
            assert len(mine) == len(report["clusters"]) == int(img["n_clusters"])
            assert [r["category"] for r in mine] == [
                c["assessment"]["category"] for c in report["clusters"]
            ]
            assert (folder / "views.json").exists()  # what the view pairing reads
            # whether the figures cover the image (0.2 mm: no grain sharpness measured)
            assert img["familiar"] == str(report["domain"]["familiar"])
            assert img["scan_sharpness"] == "" and report["domain"]["scan_sharpness"] is None
        else:
            assert img["familiar"] == img["scan_sharpness"] == ""
            # with where each cluster lies
            assert [(r["half"], r["depth"]) for r in mine] == [
                (c["location"]["half"] or "", c["location"]["depth"] or "")
                for c in report["clusters"]
            ]
            assert all(r["depth"] in ("anterior", "middle", "posterior") for r in mine)
    broken = out / "b__broken.dcm"
    error = json.loads((broken / "error.json").read_text())
    assert error["error"] == "UnreadableFileError" and "broken.dcm" in error["message"]
    assert not (broken / "analysis.json").exists()
    assert not list(out.glob(".tmp-*"))
    # copies of the same image give the same clusters
    same = [[(r["cluster_id"], r["category"]) for r in rows if r["image"] == k]
            for k in ("a__p0.dcm", "a__p0_1.dcm", "b__p0_2.dcm")]  # fmt: skip
    assert same[0] == same[1] == same[2]


def test_rerun_skips_done_and_redoes_half_written(
    clean_run: Path, archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(clean_run, out)
    assert run_batch(archive, out, processes=False, show_progress=False).n_analysed == 0
    # a half-written folder (no _done), a temporary folder and a missing folder
    (out / "a__p1.dcm" / DONE).unlink()
    (out / "a__p1.dcm" / "analysis.json").write_text("{ half")
    shutil.rmtree(out / "b__p2_2.dcm")
    (out / ".tmp-a__p3.dcm-1234abcd").mkdir()
    (out / "summary.csv").unlink()
    res = run_batch(archive, out, workers=1, processes=False, show_progress=False)
    assert (res.n_analysed, res.n_failed) == (2, 0)
    assert res.n_skipped == N_DISTINCT * N_COPIES + 1 - 2
    assert not list(out.glob(".tmp-*"))
    assert (out / "summary.csv").read_bytes() == (clean_run / "summary.csv").read_bytes()
    assert (out / "images.csv").read_bytes() == (clean_run / "images.csv").read_bytes()
    # --retry-failed redoes the failed image (still failing: same summary)
    res = run_batch(archive, out, retry_failed=True, processes=False, show_progress=False)
    assert (res.n_analysed, res.n_failed) == (0, 1)


def test_killed_batch_rerun_gives_the_same_summary(
    clean_run: Path, archive: Path, tmp_path: Path
) -> None:
    """SIGKILL ``calcscope batch`` (and its Dask workers) mid-run, rerun, compare."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "calcscope.apps.cli", "batch", str(archive), "--out", str(out),
           "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_dir() and len(list(out.glob(f"*/{DONE}"))) >= 3:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    n_before = len(list(out.glob(f"*/{DONE}")))
    assert 3 <= n_before < N_DISTINCT * N_COPIES + 1, "the batch was not killed mid-run"
    assert not (out / "summary.csv").exists()
    res = run_batch(archive, out, workers=2, processes=False, show_progress=False)
    assert res.n_skipped == n_before
    assert (out / "summary.csv").read_bytes() == (clean_run / "summary.csv").read_bytes()
    assert (out / "images.csv").read_bytes() == (clean_run / "images.csv").read_bytes()


def test_cli_batch_on_local_cluster(archive: Path, tmp_path: Path) -> None:
    sub = tmp_path / "in"
    sub.mkdir()
    for name in ("p0.dcm", "p1.dcm"):
        shutil.copy(archive / "a" / name, sub / name)
    out = tmp_path / "out"
    assert main(["batch", str(sub), "--out", str(out), "--workers", "2"]) == 0
    assert [r["status"] for r in _read(out / "images.csv")] == ["ok", "ok"]
    assert main(["batch", str(sub), "--out", str(out), "--scheduler", "tcp://x:1",
                 "--workers", "2"]) == 2  # fmt: skip


def test_image_id(tmp_path: Path) -> None:
    assert image_id(tmp_path / "x" / "y.dcm", tmp_path) == "x__y.dcm"
    assert image_id(Path("/elsewhere/z.png"), tmp_path) == "z.png"


def test_clean_removes_leftovers_of_a_killed_run(tmp_path) -> None:
    from calcscope.apps.batch import DONE, _clean

    (tmp_path / ".tmp-a-1234").mkdir()  # an image folder being written
    (tmp_path / ".summary.csv.x1y2.tmp").write_text("partial")  # a summary being written
    (tmp_path / "b").mkdir()  # an image folder without its completion marker
    done = tmp_path / "c"
    done.mkdir()
    (done / DONE).write_text("ok\n")
    todo = _clean(tmp_path, {"a", "b", "c"}, retry_failed=False)
    assert todo == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


class FakePanic(BaseException):
    """Like pyo3_runtime.PanicException: not an Exception."""


def test_panic_and_hang_are_recorded_and_the_batch_finishes(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import calcscope.pipeline

    sub = tmp_path / "in"
    sub.mkdir()
    for name in ("p0.dcm", "panic.dcm", "slow.dcm"):
        shutil.copy(archive / "a" / "p0.dcm", sub / name)
    done = calcscope.pipeline.analyze(sub / "p0.dcm")  # analysed ahead: no slow task

    def analyze(path, *args, **kwargs):  # the workers are threads of this process
        if Path(path).name == "panic.dcm":
            raise FakePanic("called `Result::unwrap()` on an `Err` value")
        if Path(path).name == "slow.dcm":
            time.sleep(5)
            raise RuntimeError("should have timed out")
        return done

    monkeypatch.setattr(calcscope.pipeline, "analyze", analyze)
    out = tmp_path / "out"
    t0 = time.monotonic()
    res = run_batch(sub, out, workers=2, processes=False, show_progress=False, timeout_s=1.5)
    assert (res.n_analysed, res.n_failed) == (1, 2)
    images = {r["image"]: r for r in _read(out / "images.csv")}
    assert images["p0.dcm"]["status"] == "ok"
    assert images["panic.dcm"]["status"] == "failed"
    assert images["panic.dcm"]["error"].startswith("FakePanic: called `Result::unwrap()`")
    assert images["slow.dcm"]["status"] == "failed"
    assert images["slow.dcm"]["error"] == "timed out after 1.5 s"
    error = json.loads((out / "slow.dcm" / "error.json").read_text())
    assert error["error"] == "TimeoutError"
    assert time.monotonic() - t0 < 30
    # the hung task's late end does not overwrite the record of its time-out
    time.sleep(max(0.0, t0 + 6 - time.monotonic()))
    assert json.loads((out / "slow.dcm" / "image.json").read_text())["status"] == "failed"
    assert not list(out.glob(".tmp-*"))


def test_default_workers_follow_free_memory() -> None:
    from calcscope.apps.batch import default_workers

    gb = 2**30
    assert default_workers(available_bytes=64 * gb, cpus=8) == 8  # cores limit
    assert default_workers(available_bytes=4 * gb, cpus=8) == 3  # ~1.4 GB per worker
    assert default_workers(available_bytes=gb // 2, cpus=8) == 1  # never fewer than one
    assert 1 <= default_workers() <= (os.cpu_count() or 1)


def test_rows_come_from_the_report_model(clean_run: Path) -> None:
    """A folder written by the previous version (no views.json, no trailing newline
    difference mattering) is read as the report model; its rows equal the task's."""
    from calcscope.apps.batch import ViewRecord
    from calcscope.apps.batch_tables import cluster_rows, header_identity
    from calcscope.reports.schema import AnalysisReport

    folder = clean_run / "a__p0.dcm"
    report = AnalysisReport.model_validate_json((folder / "analysis.json").read_text())
    rows = cluster_rows("a__p0.dcm", report)
    with (folder / "clusters.csv").open(newline="") as fh:
        assert [{k: str(v) for k, v in r.items()} for r in rows] == list(csv.DictReader(fh))
    patient_id, study_date = header_identity(str(clean_run.parent / "x"))  # not a file
    assert (patient_id, study_date) == (None, None)
    patient_id, study_date = header_identity(report.source.path or "")
    assert patient_id == "CALCSCOPE-PHANTOM" and study_date is not None
    record = ViewRecord.from_report(report, patient_id=patient_id, study_date=study_date)
    assert record is not None and record.view == "CC"
    assert record.to_json() == (folder / "views.json").read_text()


def _view_report(base, study: str, lat: str, view: str, clusters: list[tuple[float, float, str]]):
    """A copy of the report ``base`` seen as ``view`` of breast ``lat`` in ``study``, with
    one cluster per (nipple distance mm, offset mm, category)."""
    template = base.clusters[0]
    made = []
    for k, (dist, off, cat) in enumerate(clusters, start=1):
        location = template.location.model_copy(
            update={"nipple_distance_mm": dist, "offset_mm": off}
        )
        assessment = template.assessment.model_copy(
            update={"category": cat, "likelihood": 0.8 if cat == "4C" else 0.02}
        )
        morphology = "fine_linear" if cat == "4C" else "round"
        made.append(
            template.model_copy(
                update={
                    "id": k,
                    "morphology": morphology,
                    "assessment": assessment,
                    "location": location,
                }  # fmt: skip
            )
        )
    source = base.source.model_copy(
        update={"study_instance_uid": study, "laterality": lat, "view": view}
    )
    return base.model_copy(update={"source": source, "clusters": made})


def test_breasts_csv_pairs_the_views_of_each_breast(clean_run: Path, tmp_path: Path) -> None:
    from calcscope.apps.batch import ViewRecord, write_breasts
    from calcscope.reports.schema import AnalysisReport

    base = AnalysisReport.model_validate_json(
        (clean_run / "a__p0.dcm" / "analysis.json").read_text()
    )
    reports = {
        "s1_rcc": _view_report(base, "1.2.3", "R", "CC", [(40.0, 12.0, "3"), (70.0, -8.0, "4C")]),
        "s1_rmlo": _view_report(base, "1.2.3", "R", "MLO", [(73.0, 20.0, "4B"), (120.0, 5.0, "3")]),
        "s1_lcc": _view_report(base, "1.2.3", "L", "CC", [(40.0, 12.0, "3")]),  # no MLO
        "s2_rmlo": _view_report(base, "9.9", "R", "MLO", [(40.0, 12.0, "3")]),  # another study
    }
    for key, rep in reports.items():  # folders without views.json: the report is read
        (tmp_path / key).mkdir()
        (tmp_path / key / "analysis.json").write_text(rep.model_dump_json(indent=1))
    # a folder written by a batch task also holds the small views.json, read first
    record = ViewRecord.from_report(reports["s1_rmlo"])
    assert record is not None
    (tmp_path / "s1_rmlo" / "views.json").write_text(record.to_json())
    (tmp_path / "s1_rmlo" / "analysis.json").write_text("not read")
    path = write_breasts(tmp_path, sorted(reports) + ["missing"])
    rows = _read(path)
    assert tuple(rows[0]) == BREAST_COLUMNS
    assert len(rows) == 1
    row = rows[0]
    assert (row["cc_image"], row["cc_cluster_id"], row["mlo_image"], row["mlo_cluster_id"]) == (
        "s1_rcc",
        "2",
        "s1_rmlo",
        "1",
    )
    # inner on the CC view, upper on the MLO view, right breast: upper inner, 1-2 o'clock
    assert (row["quadrant"], row["clock"]) == ("upper inner", "1")
    assert (row["category"], row["morphology"]) == ("4C", "fine_linear")
    assert float(row["distance_difference_mm"]) == 3.0


def test_killed_and_hung_worker_processes(archive: Path, tmp_path: Path) -> None:
    """A worker process that dies, and one that hangs, fail only their image: the hung
    one is restarted after the time limit and the batch finishes."""
    import dask
    from distributed import Client, LocalCluster
    from distributed.diagnostics.plugin import WorkerPlugin

    sub = tmp_path / "in"
    sub.mkdir()
    for name in ("good.dcm", "hang.dcm", "killed.dcm"):
        shutil.copy(archive / "a" / "p0.dcm", sub / name)

    class Sabotage(WorkerPlugin):  # runs again in every restarted worker process
        def setup(self, worker) -> None:
            import calcscope.pipeline

            real = calcscope.pipeline.analyze

            def analyze(path, *args, **kwargs):
                if Path(path).name == "killed.dcm":
                    os._exit(1)
                if Path(path).name == "hang.dcm":
                    time.sleep(600)
                return real(path, *args, **kwargs)

            calcscope.pipeline.analyze = analyze

    out = tmp_path / "out"
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(Sabotage())
        t0 = time.monotonic()
        res = run_batch(sub, out, client=client, show_progress=False, timeout_s=20)
        assert time.monotonic() - t0 < 120
    images = {r["image"]: r for r in _read(out / "images.csv")}
    assert images["good.dcm"]["status"] == "ok"
    assert images["hang.dcm"]["error"] == "timed out after 20 s"
    assert images["killed.dcm"]["error"].startswith("KilledWorker")
    assert (res.n_analysed, res.n_failed) == (1, 2)


_FAULTS_SCRIPT = """
import resource, sys
from calcscope.apps.batch import tune_malloc

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        a = bytearray(20 * 2**20)  # an image-sized temporary, 20 MiB, zeroed by malloc's
        del a  # caller as OpenCV's are (NumPy's large arrays use huge pages)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

untuned = faults()
if not tune_malloc():
    sys.exit(3)
faults()  # the heap grows once
print(untuned, faults(), tune_malloc())
"""


def test_tuned_malloc_reuses_image_sized_blocks() -> None:
    """Under a Dask nanny's MALLOC_TRIM_THRESHOLD_ every image-sized temporary is mapped and
    zeroed anew (page faults); after tune_malloc (called by each task) glibc reuses them."""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    proc = subprocess.run(
        [sys.executable, "-c", _FAULTS_SCRIPT], env=env, capture_output=True, text=True
    )
    if proc.returncode == 3:
        pytest.skip("not glibc: malloc thresholds cannot be set")
    assert proc.returncode == 0, proc.stderr
    untuned, tuned, again = proc.stdout.split()
    assert int(untuned) > 20 * 4000  # about 5,120 pages per 20 MiB array
    assert int(tuned) < int(untuned) // 10
    assert again == "True"  # later calls keep the first call's outcome
