"""Self-contained HTML report of one image: the overlay, the findings, the settings.

One file, no external resource (no script, font or style sheet is fetched): the overlay
PNG (:func:`calcscope.reports.schema.overlay_png`, given as bytes) is embedded as a
base64 ``data:`` URI and zoomed by a few lines of inline JavaScript (buttons, or a click
on the image). The findings table has one row per finding (clusters ``C1, C2, ...``, then
benign macro findings ``M1, ...``) with its size in mm, morphology, distribution, BI-RADS
category, follow-up and the reason; below it the settings and the calcscope version.
The page says at its top and its foot that it comes from research software, not a
medical device. The page is rendered from the report model
(:class:`calcscope.reports.schema.AnalysisReport`) with the Jinja2 template
``report.html.j2`` (autoescaped); a report built with ``anonymize`` holds no patient
name, ID or birth date, so the page shows none.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from calcscope.about import DISCLAIMER, __version__
from calcscope.detection.domain import MEASURED_SHARPNESS, SOFTEST_SCAN
from calcscope.reports.schema import AnalysisReport, AssessmentModel
from calcscope.reports.templating import render_template

__all__ = ["render_html", "png_data_uri"]


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass(frozen=True)
class _Row:
    """One row of the findings table (every value as shown)."""

    id: str
    kind: str
    location: str
    count: str
    size: str
    median: str
    shape: str
    distribution: str
    assessment: AssessmentModel


def _findings_rows(rep: AnalysisReport) -> list[_Row]:
    rows = [
        _Row(
            f"C{c.id}",
            "cluster of microcalcifications",
            c.location.text if c.location else "",
            f"{c.n_detected} + {c.n_members - c.n_detected} possible",
            f"{c.extent_mm:.1f}",
            f"{c.median_diameter_mm:.2f}",
            c.morphology.replace("_", " ") + ("" if c.morphology_confident else " (?)"),
            c.distribution,
            c.assessment,
        )
        for c in rep.clusters
    ]
    rows += [
        _Row(
            f"M{m.id}",
            "macrocalcification",
            m.location.text if m.location else "",
            str(len(m.member_ids)),
            f"{m.size_mm:.1f}",
            f"{m.size_mm:.1f}",
            m.pattern.replace("_", " "),
            "",
            m.assessment,
        )
        for m in rep.macro_findings
    ]
    return rows


def _header(rep: AnalysisReport) -> list[tuple[str, str]]:
    src = rep.source
    header = [
        ("image", src.path or "(array)"),
        ("laterality / view", f"{src.laterality or '?'} / {src.view or '?'}"),
        ("size", f"{src.shape_rc[1]} x {src.shape_rc[0]} pixels"),
        ("pixel spacing", f"{src.spacing_mm[0]:g} x {src.spacing_mm[1]:g} mm"),
        (
            "calcifications",
            f"{rep.n_calcifications} ({rep.n_microcalcifications} micro, "
            f"{rep.n_macrocalcifications} macro)",
        ),
        ("clusters", str(len(rep.clusters))),
    ]
    sharpness = rep.domain.scan_sharpness if rep.domain is not None else None
    if sharpness is not None:
        header.append(
            (
                "grain sharpness",
                f"{sharpness:.2f} (scanned DDSM films measured {MEASURED_SHARPNESS[0]:.2f}-"
                f"{MEASURED_SHARPNESS[1]:.2f}; under {SOFTEST_SCAN:.2f}: a softer scan than any "
                "measured)",
            )
        )
    if rep.nipple_line is not None:
        header.append(
            (
                "breast depth",
                f"{rep.nipple_line.length_mm:.0f} mm along the posterior nipple line; "
                f"{rep.nipple_line.orientation}",
            )
        )
    return header


def _settings(rep: AnalysisReport) -> list[tuple[str, str]]:
    s = rep.settings
    return [
        ("calcscope version", rep.calcscope_version),
        ("report schema", f"{rep.schema_name} {rep.schema_version}"),
        ("macro / micro threshold", f"{s.macro_threshold_mm:g} mm (equivalent diameter)"),
        ("cluster definition", s.cluster_definition),
        ("detection operating score", f"{s.detect_operating_score:g}"),
        ("cluster operating score", f"{s.cluster_operating_score:g}"),
    ]


def render_html(report: AnalysisReport, *, overlay_png: bytes | None = None) -> str:
    """The HTML report as a string (see the module docstring).

    Parameters
    ----------
    report
        The report to show.
    overlay_png
        The overlay image (:func:`calcscope.reports.schema.overlay_png`) as PNG bytes;
        without it the page has no image section.
    """
    src = report.source
    p = report.patient
    return render_template(
        "report.html.j2",
        title=f"calcscope report: {Path(src.path).name if src.path else 'image'}",
        disclaimer=DISCLAIMER,
        a=report.assessment,
        patient=(
            " / ".join(str(v) for v in (p.name, p.id, p.birth_date) if v) if p is not None else ""
        ),
        header=_header(report),
        findings=_findings_rows(report),
        overlay_uri=png_data_uri(overlay_png) if overlay_png is not None else None,
        settings=_settings(report),
        config=json.dumps(report.settings.config, indent=1),
        version=__version__,
        domain_warning=report.domain.warning if report.domain is not None else None,
    )
