"""Self-contained HTML report of one image: the overlay, the findings, the settings.

One file, no external resource (no script, font or style sheet is fetched): the overlay
PNG (:func:`calcscope.reports.schema.render_overlay`, shrunk to ``max_side_px``) is embedded as a
base64 ``data:`` URI and zoomed by a few lines of inline JavaScript (buttons, or a click
on the image). The findings table has one row per finding (clusters ``C1, C2, ...``, then
benign macro findings ``M1, ...``) with its size in mm, morphology, distribution, BI-RADS
category, follow-up and the reason; below it the settings and the calcscope version.
The page says at its top and its foot that it comes from research software, not a
medical device. With ``anonymize`` no patient name, ID or birth date is written (and
the source path is reduced to its file name).
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

import cv2

from calcscope.about import DISCLAIMER, __version__
from calcscope.files import write_atomic
from calcscope.pipeline import Analysis
from calcscope.reports.schema import AnalysisReport, render_overlay, to_report

__all__ = ["render_html", "write_html", "overlay_data_uri"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#111}
.notice{background:#fff3cd;border:1px solid #e0b000;padding:.6em 1em;border-radius:4px}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #bbb;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#eee}
.viewer{overflow:auto;max-height:75vh;border:1px solid #999;background:#000}
.viewer img{display:block;width:100%;cursor:zoom-in;image-rendering:auto}
.zoom button{margin-right:.3em}
.cat-4A,.cat-4B,.cat-4C,.cat-5{color:#b00000;font-weight:bold}
.cat-0,.cat-3{color:#9a6000;font-weight:bold}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.85em}
"""

_JS = """
(function(){
  var img=document.getElementById('overlay'), z=1;
  function mark(){document.body.setAttribute('data-overlay-size',
    img.naturalWidth+'x'+img.naturalHeight);}
  if(img.complete&&img.naturalWidth){mark();}else{img.addEventListener('load',mark);}
  function set(v){z=Math.max(1,Math.min(16,v));img.style.width=(100*z)+'%';
    img.style.cursor=z<16?'zoom-in':'zoom-out';
    document.getElementById('zoomlevel').textContent=z+'x';}
  document.getElementById('zin').onclick=function(){set(z*2)};
  document.getElementById('zout').onclick=function(){set(z/2)};
  document.getElementById('zfit').onclick=function(){set(1)};
  img.onclick=function(e){var v=img.parentNode, r=img.getBoundingClientRect();
    var fx=(e.clientX-r.left)/r.width, fy=(e.clientY-r.top)/r.height;
    set(z<16?z*2:1);
    v.scrollLeft=fx*img.clientWidth-v.clientWidth/2;
    v.scrollTop=fy*img.clientHeight-v.clientHeight/2;};
})();
"""


def overlay_data_uri(analysis: Analysis, *, max_side_px: int = 2048) -> str:
    """The overlay image as a ``data:image/png;base64,...`` URI."""
    rgb = render_overlay(analysis, max_side_px=max_side_px)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV failure
        raise OSError("could not encode the overlay PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _cell(v: object) -> str:
    return f"<td>{escape(str(v))}</td>"


def _findings_rows(rep: AnalysisReport) -> list[str]:
    rows = []
    for c in rep.clusters:
        a = c.assessment
        rows.append(
            f'<tr class="finding" id="C{c.id}">'
            + _cell(f"C{c.id}")
            + _cell("cluster of microcalcifications")
            + _cell(c.location.text if c.location else "")
            + _cell(f"{c.n_detected} + {c.n_members - c.n_detected} possible")
            + _cell(f"{c.extent_mm:.1f}")
            + _cell(f"{c.median_diameter_mm:.2f}")
            + _cell(c.morphology.replace("_", " ") + ("" if c.morphology_confident else " (?)"))
            + _cell(c.distribution)
            + f'<td class="cat-{escape(a.category)}">{escape(a.category)}</td>'
            + _cell(a.follow_up_label)
            + _cell(a.reason)
            + "</tr>"
        )
    for m in rep.macro_findings:
        a = m.assessment
        rows.append(
            f'<tr class="finding" id="M{m.id}">'
            + _cell(f"M{m.id}")
            + _cell("macrocalcification")
            + _cell(m.location.text if m.location else "")
            + _cell(len(m.member_ids))
            + _cell(f"{m.size_mm:.1f}")
            + _cell(f"{m.size_mm:.1f}")
            + _cell(m.pattern.replace("_", " "))
            + _cell("")
            + f'<td class="cat-{escape(a.category)}">{escape(a.category)}</td>'
            + _cell(a.follow_up_label)
            + _cell(a.reason)
            + "</tr>"
        )
    return rows


def render_html(analysis: Analysis, *, anonymize: bool = False, max_side_px: int = 2048) -> str:
    """The HTML report of ``analysis`` as a string (see the module docstring)."""
    rep = to_report(analysis, anonymize=anonymize)
    src = rep.source
    a = rep.assessment
    title = f"calcscope report: {Path(src.path).name if src.path else 'image'}"
    patient = ""
    if rep.patient is not None and not anonymize:
        p = rep.patient
        patient = (
            "<tr><th>patient</th><td>"
            + escape(" / ".join(str(v) for v in (p.name, p.id, p.birth_date) if v))
            + "</td></tr>"
        )
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
    if rep.nipple_line is not None:
        header.append(
            (
                "breast depth",
                f"{rep.nipple_line.length_mm:.0f} mm along the posterior nipple line; "
                f"{rep.nipple_line.orientation}",
            )
        )
    head_rows = "".join(f"<tr><th>{escape(k)}</th>{_cell(v)}</tr>" for k, v in header)
    rows = _findings_rows(rep)
    table_body = "\n".join(rows) or '<tr><td colspan="11">no finding</td></tr>'
    s = rep.settings
    settings_rows = "".join(
        f"<tr><th>{escape(k)}</th>{_cell(v)}</tr>"
        for k, v in (
            ("calcscope version", rep.calcscope_version),
            ("report schema", f"{rep.schema_name} {rep.schema_version}"),
            ("macro / micro threshold", f"{s.macro_threshold_mm:g} mm (equivalent diameter)"),
            ("cluster definition", s.cluster_definition),
            ("detection operating score", f"{s.detect_operating_score:g}"),
            ("cluster operating score", f"{s.cluster_operating_score:g}"),
        )
    )
    config = escape(json.dumps(s.config, indent=1))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<p class="notice" id="disclaimer"><strong>Research software, not a medical device.</strong>
{escape(DISCLAIMER)}</p>
<h1>{escape(title)}</h1>
<h2>Assessment</h2>
<p id="assessment">BI-RADS <span class="cat-{escape(a.category)}">{escape(a.category)}</span>
({escape(a.category_label)}). Follow-up: <strong>{escape(a.follow_up_label)}</strong>.</p>
<p>Why: {escape(a.reason)}</p>
<table class="source">{patient}{head_rows}</table>
<h2>Findings</h2>
<table id="findings">
<thead><tr><th>finding</th><th>kind</th><th>location</th><th>calcifications</th><th>size (mm)</th>
<th>median diameter (mm)</th><th>morphology</th><th>distribution</th><th>BI-RADS</th>
<th>follow-up</th><th>reason</th></tr></thead>
<tbody>
{table_body}
</tbody></table>
<h2>Image</h2>
<p class="zoom"><button id="zin" type="button">zoom in</button><button id="zout"
type="button">zoom out</button><button id="zfit" type="button">fit</button>
<span id="zoomlevel">1x</span> (click the image to zoom at a point). Cyan outlines:
microcalcifications; yellow: macrocalcifications; boxes: findings.</p>
<div class="viewer"><img id="overlay" alt="mammogram with the calcifications outlined"
src="{overlay_data_uri(analysis, max_side_px=max_side_px)}"></div>
<h2>Settings</h2>
<table id="settings">{settings_rows}</table>
<details><summary>full configuration</summary><pre>{config}</pre></details>
<p class="notice">calcscope {escape(__version__)}. {escape(DISCLAIMER)}</p>
<script>{_JS}</script>
</body></html>
"""


def write_html(
    analysis: Analysis, path: str | Path, *, anonymize: bool = False, max_side_px: int = 2048
) -> Path:
    """Write the HTML report to ``path`` (atomically)."""
    text = render_html(analysis, anonymize=anonymize, max_side_px=max_side_px)
    return write_atomic(path, text.encode("utf-8"))
