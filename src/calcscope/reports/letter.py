"""A plain-language letter for the patient: what was seen, what it usually means, what
the suggested next step is, and that only their doctor can decide.

Written for a reading age of about 11-12 years: short sentences (on average at most 15
words), short words (on average at most 5 letters), and no medical term without its
meaning in the same sentence (:data:`EXPLAINED_TERMS` lists the terms used and how they
are explained). The letter never names the patient, so it holds no patient identity
whatever ``anonymize`` says. It says that it comes from research software, not a medical
device, at its top and its foot.

The wording follows the usual meaning of each BI-RADS category (ACR BI-RADS Atlas, 5th
edition; see :mod:`calcscope.reading.assess`): category 1-2, nothing beyond routine screening;
3, another mammogram in 6 months (at most 2 in 100 such findings are cancer); 0, more
pictures first (a diagnostic mammogram with spot compression or magnification); 4-5, a
biopsy.
"""

from __future__ import annotations

from pathlib import Path

from calcscope.about import __version__
from calcscope.files import write_atomic
from calcscope.model import Distribution, Laterality
from calcscope.reading.assess import Category, FollowUp
from calcscope.reading.location import BreastHalf
from calcscope.reports.schema import AnalysisReport
from calcscope.reports.templating import render_template

__all__ = [
    "EXPLAINED_TERMS",
    "NEXT_STEP",
    "letter_paragraphs",
    "letter_text",
    "letter_html",
    "paragraphs_text",
    "paragraphs_html",
    "write_letter",
]

#: Medical terms the letter may use, each with the plain words that explain it.
EXPLAINED_TERMS: dict[str, str] = {
    "calcification": "a tiny spot of calcium",
    "cluster": "a small group of tiny spots close together",
    "spot compression": "close-up pictures of one small part of the breast",
    "biopsy": "a doctor takes a tiny piece of tissue with a needle",
}

NOTICE = (
    "This letter was made by research software. It is not a medical device. It is not a diagnosis."
)

#: The next step in plain words, one per follow-up.
NEXT_STEP: dict[FollowUp, str] = {
    FollowUp.ROUTINE: "The next step: nothing more than your usual screening mammogram.",
    FollowUp.SHORT_INTERVAL: (
        "The next step: another mammogram in 6 months. It checks that the spots do not change."
    ),
    FollowUp.ADDITIONAL_IMAGING: (
        "The next step: a mammogram with spot compression: close-up pictures of one small "
        "part of the breast."
    ),
    FollowUp.BIOPSY: (
        "The next step: a biopsy, where a doctor takes a tiny piece of tissue with a "
        "needle. A lab then looks at it closely."
    ),
}

_MEANING: dict[Category, str] = {
    Category.C1: "Nothing was found that needs a closer look.",
    Category.C2: "Spots like these are harmless. They are not cancer.",
    Category.C3: (
        "Spots like these are very likely harmless. Fewer than 2 in 100 turn out to be cancer."
    ),
    Category.C0: (
        "The spots are too small to judge well on this picture. More pictures are needed "
        "to tell what they are."
    ),
    Category.C4A: (
        "The shape of the spots needs a closer look. Most spots like these are still not cancer."
    ),
    Category.C4B: (
        "The shape of the spots needs a closer look. Many spots like these are still not cancer."
    ),
    Category.C4C: (
        "The shape of the spots is a cause for concern. It is important to check them soon."
    ),
    Category.C5: (
        "The shape of the spots is a strong cause for concern. It is important to check them soon."
    ),
}


def _side(laterality: str | None) -> str:
    if laterality == Laterality.LEFT.value:
        return " in your left breast"
    if laterality == Laterality.RIGHT.value:
        return " in your right breast"
    return ""


def _count(n: int, one: str, many: str) -> str:
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    return f"{words.get(n, str(n))} {one if n == 1 else many}"


_HALF_WORDS = {
    BreastHalf.OUTER: "in the outer half of the breast (the side towards the armpit)",
    BreastHalf.INNER: "in the inner half of the breast (the side towards the middle of the chest)",
    BreastHalf.UPPER: "in the upper half of the breast",
    BreastHalf.LOWER: "in the lower half of the breast",
    BreastHalf.CENTRAL: "just behind the nipple",
}


def _where(report: AnalysisReport) -> str | None:
    """Where the cluster that sets the follow-up lies, in plain words; None when no
    cluster needs more than routine screening or its place is unknown."""
    worst = max(
        (c for c in report.clusters if c.location is not None),
        key=lambda c: (Category(c.assessment.category).rank, c.assessment.likelihood),
        default=None,
    )
    if worst is None or worst.location is None:
        return None
    if Category(worst.assessment.category) in (Category.C1, Category.C2):
        return None
    loc = worst.location
    half = BreastHalf(loc.half) if loc.half is not None else None
    parts = []
    if half is not None:
        parts.append(_HALF_WORDS[half])
    if loc.nipple_distance_mm is not None and half is not BreastHalf.CENTRAL:
        cm = max(1, round(loc.nipple_distance_mm / 10))
        parts.append(f"about {cm} cm from the nipple")
    if not parts:
        return None
    group = "The group" if len(report.clusters) == 1 else "The group that needs a closer look"
    return f"{group} is " + ", ".join(parts) + "."


def _what_was_seen(report: AnalysisReport) -> list[str]:
    """The "What we saw" paragraph."""
    side = _side(report.source.laterality)
    n_macro = report.n_macrocalcifications
    diffuse = any(c.distribution == Distribution.DIFFUSE.value for c in report.clusters)
    n_clusters = sum(1 for c in report.clusters if c.distribution != Distribution.DIFFUSE.value)
    if not report.n_calcifications and not report.clusters:
        return [f"The computer found no calcium spots{side}."]
    seen = [
        "A calcification is a tiny spot of calcium in the breast. "
        "They are very common, and more so with age."
    ]
    if diffuse:
        seen.append(
            "The computer found many tiny spots spread all over "
            f"{side.removeprefix(' in ') or 'the breast'}, not in one place. Spots spread "
            "out like this are most often harmless."
        )
    if n_clusters:
        seen.append(
            f"{'It also' if diffuse else 'The computer'} found "
            f"{_count(n_clusters, 'cluster', 'clusters')} "
            f"({EXPLAINED_TERMS['cluster']}){side}."
        )
        where = _where(report)
        if where:
            seen.append(where)
    if n_macro:
        seen.append(
            f"It found {_count(n_macro, 'larger spot', 'larger spots')} as well"
            if n_clusters
            else f"The computer found {_count(n_macro, 'larger spot', 'larger spots')}{side}"
        )
        seen[-1] += ". Larger spots are almost always harmless."
    if not n_clusters and not n_macro and not diffuse:
        seen.append(f"The computer found a few very small spots{side}, not in a group.")
    return seen


def letter_paragraphs(report: AnalysisReport) -> list[list[str]]:
    """The letter as paragraphs of sentences (plain text)."""
    a = report.assessment
    meaning = ["Most calcium spots are not cancer.", _MEANING[Category(a.category)]]
    step = [NEXT_STEP[FollowUp(a.follow_up)]]
    doctor = [
        "Only your doctor can decide what is right for you.",
        "Please talk to your doctor about this result. Bring this letter with you.",
    ]
    return [[NOTICE], _what_was_seen(report), meaning, step, doctor]


_HEADINGS = ("", "What we saw", "What it usually means", "What happens next", "Your doctor")


def paragraphs_text(paragraphs: list[list[str]]) -> str:
    """A letter's paragraphs (notice, what was seen, meaning, next step, doctor) as plain
    text under their headings; the image letter and the exam letter share it."""
    parts = ["Your mammogram: the computer's reading", ""]
    for heading, para in zip(_HEADINGS, paragraphs, strict=True):
        if heading:
            parts.append(heading)
        parts.append(" ".join(para))
        parts.append("")
    parts.append(f"(calcscope {__version__}: research software, not a medical device.)")
    return "\n".join(parts) + "\n"


def paragraphs_html(paragraphs: list[list[str]]) -> str:
    """A letter's paragraphs as a small self-contained HTML page (``letter.html.j2``)."""
    sections = [
        (heading, " ".join(para)) for heading, para in zip(_HEADINGS, paragraphs, strict=True)
    ]
    return render_template("letter.html.j2", sections=sections, version=__version__)


def letter_text(report: AnalysisReport) -> str:
    """The letter as plain text."""
    return paragraphs_text(letter_paragraphs(report))


def letter_html(report: AnalysisReport) -> str:
    """The letter as a small self-contained HTML page (template ``letter.html.j2``)."""
    return paragraphs_html(letter_paragraphs(report))


def write_letter(report: AnalysisReport, stem_path: str | Path) -> tuple[Path, Path]:
    """Write ``<stem>.letter.html`` and ``<stem>.letter.txt`` (atomically).

    ``stem_path`` is the output path without suffix (``out/image``). The letter never
    names the patient.
    """
    stem = Path(stem_path)
    html_path = write_atomic(stem.with_name(stem.name + ".letter.html"), letter_html(report))
    txt_path = write_atomic(stem.with_name(stem.name + ".letter.txt"), letter_text(report))
    return html_path, txt_path
