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

from html import escape
from pathlib import Path

from calcscope.about import __version__
from calcscope.model import CalcKind, Distribution, Laterality
from calcscope.pipeline import Analysis
from calcscope.reading.assess import Category, FollowUp
from calcscope.reading.location import BreastHalf

__all__ = [
    "EXPLAINED_TERMS",
    "NEXT_STEP",
    "letter_paragraphs",
    "letter_text",
    "letter_html",
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


def _side(lat: Laterality | None) -> str:
    if lat is Laterality.LEFT:
        return " in your left breast"
    if lat is Laterality.RIGHT:
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


def _where(analysis: Analysis) -> str | None:
    """Where the cluster that sets the follow-up lies, in plain words; None when no
    cluster needs more than routine screening or its place is unknown."""
    worst = max(
        (f for f in analysis.clusters if f.location is not None),
        key=lambda f: (f.assessment.category.rank, f.assessment.likelihood),
        default=None,
    )
    if worst is None or worst.assessment.category in (Category.C1, Category.C2):
        return None
    loc = worst.location
    parts = []
    if loc.half is not None:
        parts.append(_HALF_WORDS[loc.half])
    if loc.nipple_distance_mm is not None and loc.half is not BreastHalf.CENTRAL:
        cm = max(1, round(loc.nipple_distance_mm / 10))
        parts.append(f"about {cm} cm from the nipple")
    if not parts:
        return None
    group = "The group" if len(analysis.clusters) == 1 else "The group that needs a closer look"
    return f"{group} is " + ", ".join(parts) + "."


def letter_paragraphs(analysis: Analysis) -> list[list[str]]:
    """The letter as paragraphs of sentences (plain text)."""
    a = analysis.assessment
    side = _side(analysis.mammogram.laterality)
    n_macro = sum(1 for c in analysis.detected if c.kind is CalcKind.MACRO)
    diffuse = any(f.description.distribution is Distribution.DIFFUSE for f in analysis.clusters)
    n_clusters = sum(
        1 for f in analysis.clusters if f.description.distribution is not Distribution.DIFFUSE
    )
    seen: list[str] = []
    if not analysis.detected and not analysis.clusters:
        seen.append(f"The computer found no calcium spots{side}.")
    else:
        seen.append(
            "A calcification is a tiny spot of calcium in the breast. "
            "They are very common, and more so with age."
        )
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
            where = _where(analysis)
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
    meaning = ["Most calcium spots are not cancer.", _MEANING[a.category]]
    step = [NEXT_STEP[a.follow_up]]
    doctor = [
        "Only your doctor can decide what is right for you.",
        "Please talk to your doctor about this result. Bring this letter with you.",
    ]
    return [[NOTICE], seen, meaning, step, doctor]


_HEADINGS = ("", "What we saw", "What it usually means", "What happens next", "Your doctor")


def letter_text(analysis: Analysis) -> str:
    """The letter as plain text."""
    parts = ["Your mammogram: the computer's reading", ""]
    for heading, para in zip(_HEADINGS, letter_paragraphs(analysis), strict=True):
        if heading:
            parts.append(heading)
        parts.append(" ".join(para))
        parts.append("")
    parts.append(f"(calcscope {__version__}: research software, not a medical device.)")
    return "\n".join(parts) + "\n"


def letter_html(analysis: Analysis) -> str:
    """The letter as a small self-contained HTML page."""
    body = []
    for heading, para in zip(_HEADINGS, letter_paragraphs(analysis), strict=True):
        if heading:
            body.append(f"<h2>{escape(heading)}</h2>")
            body.append(f"<p>{escape(' '.join(para))}</p>")
        else:
            body.append(f'<p class="notice" id="disclaimer">{escape(" ".join(para))}</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Your mammogram: the computer's reading</title><style>"
        "body{font-family:system-ui,sans-serif;font-size:1.25em;line-height:1.5;"
        "max-width:38em;margin:2em auto;padding:0 1em;color:#111}"
        ".notice{background:#fff3cd;border:1px solid #e0b000;padding:.6em 1em;"
        "border-radius:4px}h2{font-size:1.2em;margin-top:1.4em}"
        "</style></head><body>\n<h1>Your mammogram: the computer's reading</h1>\n"
        + "\n".join(body)
        + f'\n<p class="notice">calcscope {escape(__version__)}: research software, '
        "not a medical device.</p>\n</body></html>\n"
    )


def write_letter(
    analysis: Analysis, stem_path: str | Path, *, anonymize: bool = False
) -> tuple[Path, Path]:
    """Write ``<stem>.letter.html`` and ``<stem>.letter.txt`` (atomically).

    ``stem_path`` is the output path without suffix (``out/image``). The letter never
    names the patient, so ``anonymize`` changes nothing; it is accepted for symmetry.
    """
    from calcscope.files import write_atomic

    stem = Path(stem_path)
    html_path = write_atomic(
        stem.with_name(stem.name + ".letter.html"), letter_html(analysis).encode("utf-8")
    )
    txt_path = write_atomic(
        stem.with_name(stem.name + ".letter.txt"), letter_text(analysis).encode("utf-8")
    )
    return html_path, txt_path
