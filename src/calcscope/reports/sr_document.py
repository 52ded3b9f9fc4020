"""The Mammography CAD SR document shell that the image SR (:mod:`calcscope.reports.sr`) and
the exam SR (:mod:`calcscope.reports.exam_sr`) put their content trees in.

highdicom has no public class for the Mammography CAD SR SOP class, so
:class:`MammographyCADSR` subclasses its private ``_SR`` (highdicom is pinned below 0.29 in
``pyproject.toml`` for that reason).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from copy import deepcopy
from typing import Any

from highdicom.sr import CodedConcept, ContentSequence
from highdicom.sr.sop import _SR
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import MammographyCADSRStorage, generate_uid

from calcscope.about import __version__
from calcscope.reports.dicom_bytes import dataset_bytes
from calcscope.reports.dicom_source import mark_deidentified

__all__ = [
    "MammographyCADSR",
    "cad_sr_document",
    "document_bytes",
    "walk_items",
    "strip_image_names",
]

#: The placeholder name of IMAGE items while highdicom searches the tree.
_IMAGE_NAME = Code("260753009", "SCT", "Source")


def walk_items(item: Dataset) -> Iterable[Dataset]:
    """Every content item under ``item``, depth first."""
    for child in item.get("ContentSequence", []):
        yield child
        yield from walk_items(child)


def strip_image_names(ds: Dataset) -> None:
    """Remove the placeholder concept name of IMAGE items (TID 4020 and the images that
    SCOORDs are SELECTED FROM carry none; highdicom needs one while building)."""
    for item in walk_items(ds):
        if item.ValueType == "IMAGE" and "ConceptNameCodeSequence" in item:
            del item.ConceptNameCodeSequence


class MammographyCADSR(_SR):
    """A Mammography CAD SR document (SOP class 1.2.840.10008.5.1.4.1.1.88.50)."""

    def __init__(
        self,
        evidence: Sequence[Dataset],
        content: Dataset,
        series_instance_uid: str,
        series_number: int,
        sop_instance_uid: str,
        instance_number: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            evidence=evidence,
            content=content,
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            sop_class_uid=MammographyCADSRStorage,
            instance_number=instance_number,
            **kwargs,
        )

    @property
    def content(self) -> ContentSequence:
        """The document's content tree, parsed from its Content Sequence (see
        :func:`build_sr`, which sets the whole tree after construction)."""
        root = Dataset()
        for keyword in (
            "ConceptNameCodeSequence",
            "ContentSequence",
            "ValueType",
            "ContinuityOfContent",
            "ContentTemplateSequence",
        ):
            setattr(root, keyword, getattr(self, keyword))
        return ContentSequence.from_sequence([root], is_root=True, copy=True)


def light_root(content: Dataset, n_items: int) -> Dataset:
    """The root of ``content`` with copies of its first ``n_items`` children only, their
    IMAGE items named (highdicom's evidence search reads every item's concept name; the
    document's own IMAGE items carry none)."""
    light = Dataset()
    for elem in content:
        if elem.keyword != "ContentSequence":
            light.add(elem)
    children = [deepcopy(c) for c in list(content.ContentSequence)[:n_items]]
    for child in children:
        for item in [child, *walk_items(child)]:
            if item.ValueType == "IMAGE" and "ConceptNameCodeSequence" not in item:
                item.ConceptNameCodeSequence = [CodedConcept.from_code(_IMAGE_NAME)]
    light.ContentSequence = children
    return light


def cad_sr_document(
    evidence: list[Dataset],
    content: Dataset,
    *,
    series_uid: str,
    series_number: int,
    description: str,
    deidentified_by: str | None = None,
) -> MammographyCADSR:
    """The Mammography CAD SR document around ``content`` (the image's SR and the exam's).

    highdicom gets the root with its language and image library only (it deep-copies,
    re-parses and searches whatever tree it is given) and the whole tree is set
    afterwards; person and image names are stripped; ``deidentified_by`` (the headers'
    De-identification Method) marks the document de-identified.
    """
    sr = MammographyCADSR(
        evidence=evidence,
        content=light_root(content, 2),
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="calcscope",
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=description,
    )
    sr.ContentSequence = content.ContentSequence
    strip_image_names(sr)  # a no-op for the items of sr_items, which carry no image names
    sr.SoftwareVersions = __version__
    sr.ManufacturerModelName = "calcscope"
    if deidentified_by is not None:
        mark_deidentified(sr, deidentified_by)
    return sr


def document_bytes(sr: Dataset) -> bytes:
    """``sr`` as a DICOM file's bytes, its Content Sequence encoded by
    :func:`~calcscope.reports.dicom_bytes.encode_sequence` (the same bytes as
    ``sr.save_as``, in a fraction of the time)."""
    return dataset_bytes(sr, ["ContentSequence"])
