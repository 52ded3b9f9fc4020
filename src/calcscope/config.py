"""Configuration: one frozen object passed down the pipeline, never a global.

Every length is in millimetres so that one configuration serves images from 0.05 to
0.2 mm per pixel. Load overrides from JSON or TOML with :func:`load_config`.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calcscope.errors import ConfigError
from calcscope.reading.thresholds import AssessThresholds, DescribeThresholds

__all__ = [
    "IOConfig",
    "PreprocessConfig",
    "DetectConfig",
    "ClusterConfig",
    "DescribeConfig",
    "Config",
    "load_config",
    "with_model",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IOConfig(_Frozen):
    max_pixels: int = Field(
        32_000_000,
        description="Refuse images with more pixels than this (memory guard): the largest "
        "real mammograms hold about 30 megapixels (film digitised at 0.042 mm).",
    )
    min_side_px: int = Field(64, description="Refuse images smaller than this on a side.")
    min_spacing_mm: float = Field(
        0.02,
        gt=0.0,
        description="Refuse a pixel spacing (header or given) below this: no mammography "
        "detector or film digitiser samples finer.",
    )
    max_spacing_mm: float = Field(
        0.5,
        gt=0.0,
        description="Refuse a pixel spacing (header or given) above this: calcifications "
        "cannot be seen at coarser sampling.",
    )


class PreprocessConfig(_Frozen):
    pectoral: bool = Field(True, description="Exclude the pectoral muscle on MLO/ML views.")
    mask_erode_mm: float = Field(
        0.5, description="Erode the breast mask by this much to drop the skin-line edge."
    )
    border_mm: float = Field(
        1.0,
        ge=0.0,
        description="Leave this margin along the image edges out of the analysis: film and "
        "detector edges carry bright lines and specks (scanner and collimator artefacts), "
        "which otherwise pass for calcifications or vessels where the breast runs off the "
        "image.",
    )


class DetectConfig(_Frozen):
    """Spot detector parameters (all lengths in mm)."""

    background_mm: float = Field(
        6.0,
        description="Structuring element of the background opening: bright objects "
        "smaller than this are candidates (largest coarse calcifications).",
    )
    smooth_mm: float = Field(
        0.05, description="Gaussian sigma of the matched smoothing before thresholding."
    )
    seed_cnr: float = Field(
        4.0, description="A candidate needs a peak at least this many noise sigmas high."
    )
    grow_cnr: float = Field(2.5, description="Region growing threshold in noise sigmas.")
    macro_grow_z: float = Field(4.0, description="Top-hat residual that grows a coarse deposit.")
    macro_object_z: float = Field(
        8.0, description="Top-hat residual (robust sigmas) inside a coarse deposit's outline."
    )
    macro_min_mm: float = Field(
        1.0, description="Coarse deposits outlined by the top-hat are at least this wide."
    )
    coarse_min_mm: float = Field(
        1.5,
        description="Sharp-edged coarse deposits (promoted after the classifier) are at "
        "least this wide (equivalent diameter).",
    )
    coarse_peak_mm: float = Field(
        1.5, description="Radius of the local peak whose quarter outlines a coarse deposit."
    )
    coarse_edge_mm: float = Field(
        0.7,
        description="Largest edge width (peak height / upper-quartile gradient on the "
        "outline) of a sharp coarse deposit; tissue fades out over 0.7-2 mm.",
    )
    coarse_edge_ratio: float = Field(
        0.8, description="Largest edge width of a sharp coarse deposit, in equivalent radii."
    )
    coarse_score: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Score given to a sharp-edged coarse deposit the classifier missed (a "
        "rule: the classifier has seen few coarse deposits).",
    )
    coarse_max_pixel_mm: float = Field(
        0.12,
        description="Sharp coarse deposits are looked for only at pixels up to this size: "
        "coarser pixels blur every edge.",
    )
    model: str = Field(
        "candidates-v2",
        description="Candidate scorer: 'cnr' (logistic in the peak contrast-to-noise "
        "ratio), the name of the shipped LightGBM model (or ensemble) in "
        "calcscope/detection/models, or a model folder written by 'calcscope train'.",
    )
    score_cnr_mid: float = Field(8.0, description="Peak CNR at which the score is 0.5.")
    score_cnr_width: float = Field(1.0, gt=0, description="Logistic width of the score in CNR.")
    split_mm: float = Field(
        0.35,
        description="Neighbouring calcifications whose peaks are this far apart are split "
        "at the valley between them.",
    )
    speck_min_mm: float = Field(
        0.15,
        ge=0.0,
        description="Narrowest half-maximum width (equivalent diameter, mm) the imaging "
        "chain can draw a calcification with (screen, focal spot and scanner blur): a "
        "speck narrower than this whose energy lies in the finest band alone is dust, a "
        "dead pixel or film grain (score capped at speck_max_score). Applied at pixels up to "
        "speck_max_pixel_mm.",
    )
    speck_min_band_ratio: float = Field(
        0.2,
        ge=0.0,
        description="A speck whose second band's CNR is under this fraction of its finest "
        "band's is sharper than the imaging chain draws (dust, grain; score capped at "
        "speck_max_score); at pixels up to speck_max_pixel_mm.",
    )
    speck_max_score: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Score cap of a speck sharper than the imaging chain draws (see "
        "speck_min_mm): it stays a possible calcification that may join a cluster others "
        "make, but never makes one.",
    )
    stripe_noise_multiple: float = Field(
        1.5,
        gt=0.0,
        description="At pixels up to speck_max_pixel_mm, a column (row) whose pixels exceed "
        "their neighbours two pixels away by this many robust noise sigmas, as the clipped "
        "mean over the breast, is a scanner stripe, and candidates centred on it are dropped "
        "(calcscope.detection.stripes; other columns and rows reach 0.64 on the CBIS-DDSM "
        "films, their stripes 1.8-2.6).",
    )
    speck_max_pixel_mm: float = Field(
        0.06,
        ge=0.0,
        description="The two sharpness rules above apply only at pixels up to this size, "
        "where a 0.15 mm width spans three pixels: DDSM film scans (0.042-0.05 mm), where "
        "they were measured (0 turns them off).",
    )
    impulse_max_pixel_mm: float = Field(
        0.1,
        ge=0.0,
        description="At pixels up to this size (mm) single-pixel impulses are replaced by "
        "their 3 x 3 median before detection: no calcification is one isolated pixel there "
        "(screen or detector, focal spot and scanner blur spread it over its neighbours), "
        "so a pixel far above or below all 8 neighbours is a dead or hot pixel, dust at the "
        "detector or a corrupt byte. Off at coarser pixels (mini-MIAS, 0.2 mm: a "
        "calcification may be 1-2 pixels there) and at pixels up to speck_max_pixel_mm, "
        "where the sharpness rules already cap such a speck (replacing a dust speck's peak "
        "pixel there blunted it past them); 0 turns it off.",
    )
    impulse_noise_multiple: float = Field(
        16.0,
        gt=0.0,
        description="Margin of an impulse (one pixel, or a run of 2-128 pixels along one row) "
        "over the highest pixel around it (or under the lowest), in units of the image's "
        "robust fine-detail noise (1.4826 x MAD of image - median3x3 inside the breast).",
    )
    scale_cnr_sure: bool = Field(
        True,
        description="At pixels up to scale_cnr_max_pixel_mm, a candidate whose scale-matched "
        "CNR (calcscope.detection.scale_cnr: its contrast in a difference of Gaussians of "
        "0.10 and 0.30 mm, matched to a 0.15-0.6 mm speck, over that band's local rms in a "
        "scale_cnr_window_mm window) reaches scale_cnr_min, that is not too sharp and at most "
        "scale_cnr_max_diameter_mm across counts as a sure cluster member "
        "(ClusterConfig.sure_members) and may join a cluster even under min_score; its score "
        "stays the classifier's, so it is never a detection on its own (False turns it off).",
    )
    scale_cnr_min: float = Field(
        4.25,
        ge=0.0,
        description="Scale-matched CNR that makes a candidate a sure cluster member (chosen "
        "on CBIS-DDSM P_00820 and MG1 at 0.05 mm, see docs/accuracy.md).",
    )
    scale_cnr_window_mm: float = Field(
        2.0,
        gt=0.0,
        description="Side (mm) of the square window of the scale-matched band's local noise "
        "(a 4 mm window gave false clusters on real film).",
    )
    scale_cnr_max_diameter_mm: float = Field(
        1.0,
        ge=0.0,
        description="Largest equivalent diameter (mm) of a candidate the scale-matched CNR "
        "makes a sure cluster member (cluster members are specks).",
    )
    scale_cnr_max_pixel_mm: float = Field(
        0.06,
        ge=0.0,
        description="The scale-matched CNR is measured only at pixels up to this size (mm): "
        "film scanned at 0.042-0.05 mm, where grain fills the detector's finest band.",
    )
    faint_cluster_sure: bool = Field(
        False,
        description="Where the scale-matched CNR is measured, faint specks (scale-matched CNR "
        "of faint_cnr_min or more, under scale_cnr_min) in a group denser than the image's own "
        "rate of such specks (calcscope.detection.faint_clusters: Poisson tail over "
        "faint_radius_mm, corrected for the places tested, under faint_alpha) count as sure "
        "cluster members. Off: measured on CBIS-DDSM film, see docs/accuracy.md.",
    )
    faint_cnr_min: float = Field(
        3.0, ge=0.0, description="Scale-matched CNR from which a speck counts as faint."
    )
    faint_radius_mm: float = Field(
        4.0, gt=0.0, description="Radius (mm) of the disc in which faint specks are counted."
    )
    faint_alpha: float = Field(
        1.0,
        gt=0.0,
        description="Largest Poisson tail probability of a disc's count, times the number of "
        "discs the breast holds, for its faint specks to count as sure.",
    )
    faint_min_count: int = Field(
        4, ge=1, description="Fewest specks (faint or sure) a dense disc holds."
    )
    min_diameter_mm: float = Field(0.05, description="Smallest equivalent diameter kept.")
    max_diameter_mm: float = Field(12.0, description="Largest equivalent diameter kept.")
    operating_score: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Operating point: calcifications scoring at least this are reported as "
        "detected (overlay, macro patterns, false-positive counts).",
    )
    min_score: float = Field(
        0.03,
        ge=0.0,
        le=1.0,
        description="Candidates scoring at least this are kept as possible calcifications: "
        "listed with their score and allowed to join clusters, whose score sums their "
        "members' scores (faint members of a real cluster add up).",
    )


class ClusterConfig(_Frozen):
    """Cluster definition (CAD convention: >= 3 calcifications within 1 cm).

    Source: the detection-cluster definition used by CAD FROC studies, e.g.
    Kallergi M., "Computer-aided diagnosis of mammographic microcalcification
    clusters", Med Phys 31(2), 2004; the BI-RADS "grouped" distribution
    (>= 5 within 1 cm) is a description made later, in :mod:`calcscope.reading.describe`.
    """

    min_members: int = Field(3, ge=2)
    within_mm: float = Field(
        10.0, description="Members lie within this distance of each other (linkage)."
    )
    link_mm: float = Field(
        10.0,
        description="A calcification this close to a core calcification (one with "
        ">= min_members - 1 others within within_mm) joins its cluster.",
    )
    core_min_score: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Only calcifications scoring at least this can be cluster cores "
        "(fainter ones join a core's cluster but do not extend it; chosen on the "
        "leave-one-woman-out FROC of mini-MIAS among 0.1-0.5).",
    )
    sure_members: int = Field(
        4,
        ge=0,
        description="At pixels up to sure_max_pixel_mm, a cluster needs at least this many "
        "members scoring core_min_score or more: there a calcification of 0.15 mm spans "
        "several pixels and is seen on its own, while film grain, dust and noise make a "
        "sure speck or two with faint ones scattered around them (0 turns it off).",
    )
    sure_min_score: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Score a member needs to count towards sure_members (None: "
        "core_min_score; lower values measured on real film at 0.05 mm gave one cluster in "
        "48 more, see docs/accuracy.md).",
    )
    sure_within_mm: float = Field(
        6.0,
        ge=0.0,
        description="Where sure_members applies, that many sure members must also fit in one "
        "disc of this radius (mm; 6: the largest cluster issue 18 targets), not lie scattered "
        "along the cluster's links: dust and grain make sure specks 5-15 mm apart, "
        "calcifications group. On the calcification-free CBIS-DDSM films under scanner-like "
        "changes (benchmarks/bench_real_hires.py --perturb) it took false clusters from 30 to 8 "
        "in 70 films; 5 mm (5) lost a linear phantom cluster (docs/accuracy.md). 0: anywhere "
        "in the cluster.",
    )
    sure_tight_members: int = Field(
        3,
        ge=0,
        description="Where sure_members applies, a cluster with fewer sure members than that "
        "(or whose sure members do not fit in the disc of sure_within_mm) is still kept when "
        "this many sure members fit in one disc of sure_tight_mm: a tight group, which "
        "scattered dust and grain do not make (0 turns it off).",
    )
    sure_tight_mm: float = Field(
        2.5,
        ge=0.0,
        description="Radius (mm) of the disc of sure_tight_members (2.5: within 5 mm).",
    )
    sure_max_pixel_mm: float = Field(
        0.06,
        ge=0.0,
        description="Pixel size (mm) up to which sure_members applies (measured on DDSM film "
        "scans at 0.042-0.05 mm).",
    )
    centre_bandwidth_mm: float = Field(
        2.5,
        ge=0.0,
        description="A cluster's centre is the densest point of its core members' "
        "score-weighted density, smoothed with a Gaussian of this width (0: their "
        "score-weighted mean).",
    )
    compact_mm: float = Field(
        8.0,
        ge=0.0,
        description="Clusters smaller than this (extent) score higher, up to twice the sum "
        "of their member scores for a point-like group "
        "(see calcscope.detection.clusters.cluster_score; "
        "0 turns it off).",
    )
    operating_score: float = Field(
        0.4,
        ge=0.0,
        le=1.0,
        description="Clusters with a lower score are not reported. Default chosen from the "
        "leave-one-woman-out FROC on mini-MIAS: 1.0 false cluster per image there "
        "(README), so a sweep of the reported scores covers the range up to 1 FP/image; "
        "clusters under confident_score are reported as possible (BI-RADS 0).",
    )
    confident_score: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Reported clusters scoring below this are possible clusters (0.8: about "
        "0.2 false clusters per image on the leave-one-woman-out FROC of mini-MIAS): a "
        "suspicious one is assessed BI-RADS 0 (magnification views to confirm) rather "
        "than sent to biopsy.",
    )


class DescribeConfig(_Frozen):
    macro_threshold_mm: float = Field(
        0.5,
        description="Calcifications of at least this diameter are macrocalcifications "
        "(BI-RADS atlas / Radiology Assistant: microcalcifications are < 0.5 mm; some "
        "sources use 1 mm).",
    )
    thresholds: DescribeThresholds = Field(
        default_factory=DescribeThresholds,
        description="Size, shape and distribution limits of the BI-RADS description rules, "
        "each with its source (calcscope.reading.thresholds.DescribeThresholds).",
    )


class AssessConfig(_Frozen):
    thresholds: AssessThresholds = Field(
        default_factory=AssessThresholds,
        description="Likelihood bands of the BI-RADS categories (ACR atlas, 5th ed.; "
        "calcscope.reading.thresholds.AssessThresholds).",
    )


class Config(_Frozen):
    """The whole configuration."""

    io: IOConfig = IOConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    detect: DetectConfig = DetectConfig()
    cluster: ClusterConfig = ClusterConfig()
    describe: DescribeConfig = DescribeConfig()
    assess: AssessConfig = AssessConfig()


def with_model(config: Config, model: str | Path) -> Config:
    """``config`` with candidates scored by ``model``: a model folder (``calcscope train``;
    made absolute, so that worker processes find it) or a model name. When the model's
    card gives an operating point (``operating_point.cluster_score``), reported clusters
    use it (``cluster.operating_score``): a model's scores have their own scale."""
    from calcscope.detection.model_card import model_operating_score

    path = Path(model).expanduser()
    value = str(path.resolve()) if path.exists() else str(model)
    update: dict[str, Any] = {"detect": config.detect.model_copy(update={"model": value})}
    score = model_operating_score(value)
    if score is not None:
        update["cluster"] = config.cluster.model_copy(update={"operating_score": score})
    return config.model_copy(update=update)


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Read a JSON or TOML file into a :class:`Config`, defaults for what is absent."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{p}: cannot read configuration: {exc}") from exc
    data.update(overrides)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
