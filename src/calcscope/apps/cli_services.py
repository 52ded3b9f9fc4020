"""``calcscope node | batch | serve``: the commands that run services over many images
(registered on the application in :mod:`calcscope.apps.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from calcscope.about import DISCLAIMER
from calcscope.apps.cli_common import (
    AnonymizeOption,
    ConfigOption,
    ModelOption,
    SpacingOption,
    console,
    err_console,
    exit_on_errors,
    fail,
    load_settings,
)

if TYPE_CHECKING:
    from calcscope.apps.node import StorageNode

__all__ = ["batch", "node", "serve"]


def node(
    out: Annotated[Path, typer.Option("--out", "-o", help="The node's folder.")],
    ae_title: Annotated[
        str, typer.Option("--ae-title", help="This node's AE title.")
    ] = "CALCSCOPE",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 11112,
    forward: Annotated[
        str | None,
        typer.Option("--forward", help="Send the SR and GSPS to this PACS: HOST:PORT:AET."),
    ] = None,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on (0.0.0.0: every interface)."),
    ] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="Analysis processes.")] = 1,
    queue_size: Annotated[
        int, typer.Option("--queue-size", help="Received images waiting for analysis, at most.")
    ] = 64,
    dicom_reports: Annotated[
        bool, typer.Option(help="Write (and forward) the SR and GSPS, not only the JSON.")
    ] = True,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow", help="Accept only this calling AE title (repeatable; default: any)."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Speak TLS: this certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The private key of --tls-cert (PEM).")
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option("--tls-ca", help="Require client certificates signed by this CA (PEM)."),
    ] = None,
    timeout_s: Annotated[
        float | None,
        typer.Option("--timeout-s", help="Time limit of one image's analysis, in seconds."),
    ] = None,
    exam_idle_s: Annotated[
        float,
        typer.Option("--exam-idle-s", help="Write a study's exam when no image came for so long."),
    ] = 60.0,
    exam_views: Annotated[
        int, typer.Option("--exam-views", help="... or when this many images of it came.")
    ] = 4,
    prior_source: Annotated[
        str | None,
        typer.Option(
            "--prior-source",
            help="Compare each exam with the patient's prior mammograms held by this PACS "
            "(AET@HOST:PORT; C-FIND, then C-GET, else C-MOVE to this node).",
        ),
    ] = None,
    prior_timeout_s: Annotated[
        float,
        typer.Option(
            "--prior-timeout-s",
            help="Wait at most so long for the priors after a study's first image, in seconds.",
        ),
    ] = 120.0,
    anonymize: AnonymizeOption = False,
    config_path: ConfigOption = None,
    model: ModelOption = None,
) -> None:
    """DICOM Storage SCP: analyse each received mammogram once, write JSON and SR to OUT,
    and each study's exam to OUT/exams/<study>/exam.exam.json."""
    from calcscope.apps.node import Forward, StorageNode, TLSFiles

    cfg = load_settings(config_path, model)
    with exit_on_errors():
        try:
            fwd = Forward.parse(forward) if forward else None
            tls = TLSFiles.from_options(tls_cert, tls_key, tls_ca)
            node_ = StorageNode(
                ae_title,
                port,
                out,
                forward=fwd,
                workers=workers,
                queue_size=queue_size,
                config=cfg,
                host=host,
                dicom_reports=dicom_reports,
                allow=allow or (),
                tls=tls,
                timeout_s=timeout_s,
                anonymize=anonymize,
                exam_idle_s=exam_idle_s,
                exam_views=exam_views,
                prior_source=prior_source,
                prior_timeout_s=prior_timeout_s,
            )
        except ImportError as exc:
            fail(f"{exc}: pip install 'calcscope[dicom]'")
    _serve_node(node_, out, fwd is not None and not dicom_reports)


def _serve_node(node_: StorageNode, out: Path, nothing_forwarded: bool) -> None:
    """Run a built node until Ctrl-C or SIGTERM, logging to the console."""
    import logging
    import signal
    import threading

    if nothing_forwarded:
        err_console.print("[yellow]warning:[/] --no-dicom-reports: nothing will be forwarded")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("calcscope.node").addHandler(handler)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        node_.start()
    except OSError as exc:
        fail(f"cannot listen on port {node_.port}: {exc}")
    console.print(
        f"calcscope node {node_.ae_title} listening on {node_.address[0]} port {node_.port}"
        f"{' (TLS)' if node_.tls else ''}; results in {out}/ "
        f"(log {out / 'node.log'}); forward: {node_.forward or 'none'}. Ctrl-C stops. "
        f"{DISCLAIMER}"
    )
    node_.serve_until(stop)
    s = node_.stats
    console.print(
        f"stopped: {s.received} received, {s.analysed} analysed, {s.failed} failed, "
        f"{s.rejected} refused, {s.forwarded} forwarded"
    )


def batch(
    input_dir: Annotated[Path, typer.Argument(help="Folder of mammograms (searched).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Existing Dask scheduler, e.g. tcp://host:8786."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Local worker processes (default: as cores and free memory allow).",
        ),
    ] = None,
    spacing_mm: SpacingOption = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Redo images whose earlier attempt failed.")
    ] = False,
    timeout_s: Annotated[
        float,
        typer.Option(
            "--timeout-s", help="Time limit of one image in s; past it the image is failed."
        ),
    ] = 300.0,
    anonymize: AnonymizeOption = False,
    config_path: ConfigOption = None,
    model: ModelOption = None,
) -> None:
    """Analyse an archive with Dask: one folder per image, resumable, summary.csv at the end."""
    from calcscope.apps.batch import run_batch

    cfg = load_settings(config_path, model)
    if scheduler and workers:
        fail("give --scheduler or --workers, not both")
    if workers is not None and workers < 1:
        fail("--workers must be at least 1")
    with exit_on_errors():
        res = run_batch(
            input_dir,
            out,
            scheduler=scheduler,
            workers=workers,
            config=cfg,
            spacing_mm=spacing_mm,
            retry_failed=retry_failed,
            timeout_s=timeout_s,
            anonymize=anonymize,
        )
    console.print(
        f"{res.n_images} images: {res.n_analysed} analysed, {res.n_failed} failed, "
        f"{res.n_skipped} already done; {res.images_per_second:.2f} images/s. "
        f"Summary: {res.summary_csv} (per image: {res.images_csv}; per exam finding: "
        f"{res.exams_csv}; clusters seen on both views of a breast: {res.breasts_csv}). "
        f"{DISCLAIMER}"
    )
    if res.n_failed:
        raise typer.Exit(1)


def serve(
    results: Annotated[
        Path | None,
        typer.Argument(
            metavar="[DIR]", help="Results folder written by 'calcscope analyze --out'."
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; 127.0.0.1 keeps it on this machine.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    uploads: Annotated[
        Path | None,
        typer.Option("--uploads", help="Folder for uploads and their reports (default: temp)."),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", help="Refuse larger uploads.")
    ] = 200.0,
    config_path: Annotated[
        Path | None, typer.Option("--config", help="Configuration file for uploads.")
    ] = None,
    model: ModelOption = None,
    images: Annotated[
        list[Path] | None,
        typer.Option(
            "--images",
            help="Folder of the source images (repeatable); the viewer reads no image "
            "outside DIR, the uploads and these folders.",
        ),
    ] = None,
    upload_retention_hours: Annotated[
        float,
        typer.Option(
            "--upload-retention-hours", help="Remove uploads after this many hours (0: keep)."
        ),
    ] = 24.0,
) -> None:
    """Start the web viewer: study list, zoomable image with the findings, patient letter."""
    try:
        import uvicorn

        from calcscope.apps.web.app import LOOPBACK_HOSTS, create_app
    except ModuleNotFoundError as exc:
        fail(
            f"the web viewer needs the 'web' extra ({exc.name} is missing): "
            "pip install 'calcscope[web]'"
        )
    if results is not None and not results.is_dir():
        fail(f"{results}: no such folder")
    if not (0 < port < 65536) or max_upload_mb <= 0 or upload_retention_hours < 0:
        fail(
            "--port must be 1-65535, --max-upload-mb positive and "
            "--upload-retention-hours 0 or more"
        )
    for folder in images or []:
        if not folder.is_dir():
            fail(f"{folder}: no such folder")
    cfg = load_settings(config_path, model)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if not loopback:
        err_console.print(
            f"[yellow]warning:[/] listening on {host}: anyone who can reach this address "
            "can see these images and upload files (there is no login)"
        )
    web = create_app(
        results,
        uploads_dir=uploads,
        config=cfg,
        max_upload_bytes=int(max_upload_mb * 2**20),
        image_dirs=images or (),
        upload_retention_hours=upload_retention_hours or None,
        allowed_hosts=LOOPBACK_HOSTS if loopback else None,
    )
    shown = f"[{host}]" if ":" in host else host
    console.print(f"calcscope viewer on http://{shown}:{port}/ (Ctrl+C stops it). {DISCLAIMER}")
    console.print(f"uploads are written to {web.state.uploads_dir}")
    uvicorn.run(web, host=host, port=port, log_level="warning")
