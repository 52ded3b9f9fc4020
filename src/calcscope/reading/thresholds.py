"""Thresholds of the description and assessment rules, each with its source.

One small place for every number a radiologist may want to check or change: the BI-RADS
size, shape and distribution limits used by :mod:`calcscope.reading.describe` and the likelihood
bands of the assessment categories used by :mod:`calcscope.reading.assess`. Both are part of the
configuration (``describe.thresholds`` and ``assess.thresholds`` in a JSON or TOML file,
see :mod:`calcscope.config`); the defaults below are the atlas figures, with the margins
and the phantom measurements that chose them stated where they differ.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AssessThresholds", "DescribeThresholds"]


@dataclass(frozen=True)
class DescribeThresholds:
    """Thresholds of the description rules; lengths in millimetres.

    Sizes are measured to the calcification's visible edge (see
    ``calcscope.detection.outline.EXTENT_FRACTION``): on phantoms the greatest dimension
    comes within about 5-12 % of the drawn size and the area-equivalent diameter within
    5-15 % (``tests/evaluation/test_accuracy_phantom.py``).
    The size thresholds below are therefore the atlas figures, with a margin only where
    it says so.

    Attributes
    ----------
    popcorn_mm
        Coarse or popcorn-like calcifications are > 2-3 mm (BI-RADS atlas; Radiology
        Assistant: "coarse or popcorn-like ... larger than 2-3 mm"); we use the upper end,
        3 mm, on the area-equivalent diameter of a single deposit and on the greatest
        dimension of a clump of lobes (chosen on phantoms among 2.5 and 3 mm: smaller
        irregular deposits are more often dystrophic).
    lobe_gap_mm
        Coarse lobes whose outlines lie this close belong to one deposit: a popcorn
        calcification is a clump of coarse lobes (BI-RADS atlas), which the detector
        outlines one by one (``vessel_gap_mm``: likewise, segments of a calcified
        artery this close belong to one vessel). At least ``popcorn_min_lobes``
        lobes make a clump; two fragments are more often a dystrophic deposit.
    rod_width_mm
        Large rod-like calcifications are >= 1 mm in diameter (BI-RADS atlas), measured
        as the least width (the widest inscribed disc for curved shapes). Rods are
        told from vessel walls by this width: calcified arterial walls are thin tracks
        (< 1 mm) on both sides of a lumen (Radiology Assistant, "vascular").
    rod_solidity
        Rods are smooth solid casts of a duct (BI-RADS atlas: "smooth, solid"); an
        elongated deposit whose outline fills less than 60 % of its convex hull is jagged,
        which is dystrophic (phantom rods: 0.59-0.88, dystrophic stars: 0.38-0.59).
    rod_length_mm, vascular_length_mm
        Minimum length of a rod, and of a single vessel-wall track without its parallel
        partner (vascular calcifications are long parallel tracks, BI-RADS atlas).
    vascular_gap_mm
        Two parallel tracks this far apart are the two walls of one vessel (breast
        arteries are about 1-4 mm wide).
    skin_mm
        Skin (dermal) calcifications lie in the skin (normally under 3 mm thick) and have
        lucent centres (BI-RADS atlas; Radiology Assistant: "typically lucent-centred
        ... located in the skin"); seen en face they project just inside the skin line,
        so a lucent-centred calcification within 5 mm of the breast outline is called
        skin. Tangential views confirm it (the report says so).
    skin_max_mm
        Dermal calcifications are small (typically 1-2 mm, Radiology Assistant); larger
        lucent-centred shells are rim (oil cyst) calcifications wherever they lie.
    rim_mm
        Rim (eggshell) calcifications are the thin walls of oil cysts, a few mm across
        (BI-RADS atlas: "thin calcifications on the surface of spheres"); a lucent centre
        needs 1 mm across to be seen.
    coarse_heterogeneous_mm, irregular_circularity
        Coarse heterogeneous calcifications are irregular, conspicuous and generally
        0.5-1 mm (BI-RADS atlas). A cluster whose median member measures >= 0.6 mm
        (conspicuous, within that range) and whose members' outlines are irregular is
        called so. With the pixel outline the limit had been 0.7 mm, so that clusters of
        round 0.5 mm members whose small staircase outlines look irregular were not
        drawn in. With the sub-pixel outline below, 0.6 mm calls 16 more of 120 coarse
        heterogeneous phantom clusters so (seeds 100-159, 0.07 and 0.1 mm; on seeds
        100-139, category 3 instead of 4B in 6 of 80 instead of 14) at the cost of one
        more of 120 round clusters (0.65 mm: 9 more and none).
        Irregular: the median circularity (4 pi area / perimeter^2) of the members'
        sub-pixel half-maximum contours (``Calcification.contour_circularity``) is below
        ``irregular_contour_circularity``, 0.96; where the detector did not measure it,
        the median circularity of the pixel outlines is below ``irregular_circularity``,
        0.86. The pixel outline of a 0.5-1 mm speck spans 5-14 pixels and its staircase
        hides the shape: on phantoms (seeds 100-119, 0.07 and 0.1 mm) the median pixel
        circularity of coarse heterogeneous clusters (0.85-0.86) and of round ones
        (0.87-0.88) overlapped, while the iso-contour's separates them (0.949 against
        0.971-0.973; 90 % of each on its side of 0.96).
    round_mm
        Round calcifications are >= 0.5 mm; under 0.5 mm they are punctate (BI-RADS 5th
        ed.). A cluster is round when its upper quartile reaches 0.5 mm (the larger
        members are the ones that show the shape).
    amorphous_mm, amorphous_cnr
        Amorphous calcifications are "so small and/or hazy in appearance that a more
        specific particle shape cannot be determined" (BI-RADS atlas): median greatest
        dimension under 0.35 mm and median contrast-to-noise ratio under 9 (faint: the
        detector's seed level is 4).
    pleomorphic_cv, pleomorphic_circularity
        Fine pleomorphic calcifications vary in size and shape and are < 0.5 mm (BI-RADS
        atlas); a size variation (coefficient of variation of the greatest dimension)
        above 35 % or a median circularity under 0.8 is taken as varying. At 0.07-0.1 mm
        pixels a 0.3 mm calcification spans 3-4 pixels, so the shape is rarely resolved:
        magnification views decide (the report says so when a shape is not confident).
    fine_linear_width_mm, linear_elongation, linear_min_length_mm
        Fine linear or fine-linear branching calcifications are thin (< 0.5 mm) linear
        casts of a duct (BI-RADS atlas): width < 0.5 mm, elongation (1 - width / length)
        >= 0.55, at least 0.5 mm long.
    linear_fraction, branching_fraction
        A cluster is of the fine linear family when 30 % of its members are such casts,
        and branching when 15 % of the casts branch (a skeleton with >= 3 ends): the
        atlas calls the form when it is present, not only when it dominates.
    linear_min_casts, branching_min
        The same family when the cluster holds at least 4 casts of which at least 2
        branch, whatever their share (the atlas: describe a cluster by its most worrisome
        form). The detector breaks a branching cast into pieces and adds tissue specks,
        so a fine-linear branching cluster of 12 casts can count 29 members with 7 casts
        (24 %). On phantoms (seeds 100-139) this raised fine-linear branching from 95 / 88
        % to 100 / 92 % at 0.07 / 0.1 mm and changed no other class, there or on seeds
        140-159 or the macro phantoms.
    linear_ratio, linear_width_mm
        A cluster is in a linear distribution when its long axis is at least 3 times its
        short axis and its short axis (4 standard deviations) is under 5 mm: one duct
        (BI-RADS atlas, "arranged in a line").
    segmental_ratio
        Segmental: deposits in a duct and its branches, a wedge or triangle (BI-RADS
        atlas) longer than 2 cm; elongated (long axis >= 1.6 x short axis) but wider
        than one duct.
    segmental_axis_deg
        A segment is a lobe's ducts, which converge on the nipple: its wedge points at
        the nipple (BI-RADS atlas, "triangular, apex at the nipple"; Radiology
        Assistant). Where the nipple can be located, an elongated spread whose long axis
        turns more than 30 degrees away from the line to the nipple is regional, not
        segmental.
    segmental_wedge_rho, segmental_cone_deg
        A wide wedge is not elongated (a triangle of half-angle 20 degrees has axes of
        about 1.7 : 1), so a spread over more than 2 cm is also segmental when it has
        the triangle's shape with its apex towards the nipple: it widens away from the
        nipple (rank correlation of the members' distance from the nipple with their
        offset from the median line at least 0.3) and stays within a narrow cone seen
        from the nipple (the 10-90 % range of the members' bearings from it within 20
        degrees). On phantoms (seeds 100-139, 0.07 and 0.1 mm) segmental spreads had a
        median correlation of 0.38 and cone of 9.5 degrees, regional ones -0.09 and 21
        degrees; the rule raised segmental from 53 to 64 of the 66 matched spreads over
        2 cm and called no more regional spreads segmental (the settings 0.2-0.3 and
        15-20 degrees gave the same within 2).
    diffuse_min_count, diffuse_randomness, diffuse_spread
        Diffuse: "distributed randomly throughout the breast" (BI-RADS atlas; punctate
        and amorphous calcifications so distributed are usually benign, especially when
        bilateral). At least 15 detected calcifications whose mean nearest-neighbour
        distance is at least 0.9 times that of as many random points over the breast
        (Clark-Evans ratio) and whose root-mean-square distance from their centre is at
        least 0.8 times the breast's. On phantoms at 0.1 mm, 20-60 diffuse punctate
        calcifications gave ratios of 0.97-1.27 and spreads of 0.89-1.04; regional and
        segmental spreads of 30 calcifications 0.45-0.83 and 0.46-0.69; the eight
        full-field phantoms (three clusters, singles, macro patterns) 0.26-0.61; the 74
        mini-MIAS images at most 0.59 (none reaches 15 calcifications at a ratio of 0.9).
    regional_mm
        Regional: spread over more than 2 cm in greatest dimension (BI-RADS atlas);
        grouped: up to 2 cm.
    cluster_max_member_mm
        Deposits of 1 mm or more are macrocalcifications that are not cluster members;
        the limit is 1.25 mm so that 1 mm members measured a little large stay in their
        cluster (chosen on phantoms among 1, 1.25 and 1.5 mm).
    shape_min_px
        A cluster's morphology is *confident* when its median member spans at least 6
        pixels; below that the report asks for magnification views before any decision
        (the BI-RADS atlas uses magnification views to characterise calcifications whose
        form the screening image does not show). Measured on phantoms
        (``scripts/describe_accuracy.py``, seeds 100-109, 0.07 and 0.1 mm): morphology
        called as inserted for 36 % of clusters whose median member spans 4-5 pixels,
        64 % at 5-6, 73 % at 6-8 and 91 % from 8 (the former limit of 4 pixels claimed
        confidence where the call was a coin toss between punctate and fine pleomorphic).
    solitary_macro_mm
        A deposit of 1 mm or more (up to ``cluster_max_member_mm``) that no reported
        cluster takes is a macrocalcification on its own, described as round or
        dystrophic (BI-RADS atlas: round calcifications, when larger than 1 mm, are
        typically benign; isolated coarse deposits need no cluster to be reported).
    solitary_gap_mm
        Coarse deposits within 5 mm of a recognised benign macro pattern are its
        satellites (the fragments around a dystrophic or popcorn deposit, a vessel's
        beads), reported with it rather than as findings of their own. Around a
        popcorn or dystrophic deposit more than ``popcorn_mm`` across that holds a piece
        of ``cluster_max_member_mm`` or more (a clump of cluster-sized specks is no
        anchor), the smaller coarse pieces (``macro_threshold_mm`` or more) within this
        distance, thin linear casts excepted, join its finding and are never members of a
        cluster: an involuting fibroadenoma breaks into coarse pieces and dystrophic
        calcification forms scattered coarse plaques (BI-RADS atlas). On phantoms (seeds
        100-139, 0.07 and 0.1 mm) this cut the suspicious clusters formed by a dystrophic deposit's
        fragments from 6 to 4 of 80, and no class lost accuracy; a deposit of 2-3 mm is
        no anchor, since a coarse heterogeneous cluster can hold a coalesced piece that
        size.
    dystrophic_solidity, dystrophic_circularity
        A coarse deposit is irregular (dystrophic) when its solidity is under 0.8 or its
        circularity under 0.6, else round: dystrophic calcifications are "irregular in
        shape", round ones smooth (BI-RADS atlas; Radiology Assistant).
    angular_corner_fraction, angular_straight_fraction, compact_inscribed_ratio, lobulated_mm
        Popcorn against dystrophic, judged on a coarse deposit's whole outline
        (:class:`calcscope.model.DepositOutline`). Popcorn calcifications are clumps of
        rounded lobes (BI-RADS atlas: "coarse or popcorn-like", the involuting
        fibroadenoma); dystrophic ones are "irregular", often angular plaques (Radiology
        Assistant, "dystrophic"). A deposit is angular when two of these hold: sharp
        convex corners on at least 5 % of its outline, straight edges on at least 18 %, and
        a compact body whose largest inscribed disc spans at least 0.72 of its size (a
        clump of lobes has a small inscribed disc for its size), or when sharp corners
        alone cover at least ``angular_corner_alone`` (15 %) of it: rounded lobes have
        few (on the phantoms, 90 % of popcorn deposits under 10 %). An angular deposit
        is dystrophic whatever its size; one that is neither angular nor round (below) and
        measures more than ``lobulated_mm`` (2 mm, the lower end of the atlas's "> 2-3
        mm") is lobulated: popcorn. On the phantoms' whole outlines (seeds 100-139, 0.07
        and 0.1 mm) the two-of-three vote separated popcorn from dystrophic deposits in 94 %
        (each of the three measures alone: 73-80 %); settings from 0.04 to 0.06, 0.16 to
        0.2 and 0.70 to 0.74 gave 92-95 %. The measures agreed within a few points between
        the two pixel sizes. Before these rules every irregular deposit over 3 mm was
        popcorn and every smaller one dystrophic, which called half of either class the
        other.
    round_inscribed_ratio
        A deposit with few corners (under ``angular_corner_fraction``) whose largest
        inscribed disc spans at least 0.9 of its size is round, however ragged its pixel
        outline (round calcifications are smooth, BI-RADS atlas): phantom round deposits
        measure 0.92-0.96, popcorn and dystrophic ones mostly under 0.85. A piece whose
        own outline is smooth but whose deposit's is not round (under 0.9) is judged on the
        deposit: the detector outlines each lobe of a popcorn clump as a smooth piece, and
        such lobes had been called round (popcorn 75 / 78 % to 88 / 88 % on seeds 100-139
        at 0.07 / 0.1 mm and 70 / 65 % to 75 / 70 % on seeds 140-159, for 3 of 120 round
        deposits called popcorn or dystrophic instead; both are BI-RADS 2).
    pattern_fragment_mm
        Calcifications within 2 mm of a recognised benign macro pattern are fragments of
        the same deposit (the broken-up rim of an oil cyst, the satellites of a popcorn
        deposit, a vessel's beads), not members of a cluster of microcalcifications.
    """

    shape_min_px: float = 6.0
    popcorn_mm: float = 3.0
    lobe_gap_mm: float = 0.5
    vessel_gap_mm: float = 3.0
    popcorn_min_lobes: int = 3
    rod_width_mm: float = 1.0
    rod_solidity: float = 0.6
    rod_length_mm: float = 3.0
    vascular_length_mm: float = 10.0
    vascular_gap_mm: tuple[float, float] = (0.5, 4.0)
    skin_mm: float = 5.0
    skin_max_mm: float = 2.5
    rim_mm: float = 1.0
    coarse_heterogeneous_mm: float = 0.6
    irregular_circularity: float = 0.86
    irregular_contour_circularity: float = 0.96
    round_mm: float = 0.5
    amorphous_mm: float = 0.35
    amorphous_cnr: float = 9.0
    pleomorphic_cv: float = 0.35
    pleomorphic_circularity: float = 0.8
    fine_linear_width_mm: float = 0.5
    linear_elongation: float = 0.55
    linear_min_length_mm: float = 0.5
    linear_fraction: float = 0.3
    branching_fraction: float = 0.15
    linear_min_casts: int = 4
    branching_min: int = 2
    linear_ratio: float = 3.0
    linear_width_mm: float = 5.0
    segmental_ratio: float = 1.6
    segmental_axis_deg: float = 30.0
    segmental_wedge_rho: float = 0.3
    segmental_cone_deg: float = 20.0
    diffuse_min_count: int = 15
    diffuse_randomness: float = 0.9
    diffuse_spread: float = 0.8
    regional_mm: float = 20.0
    cluster_max_member_mm: float = 1.25
    solitary_macro_mm: float = 1.0
    solitary_gap_mm: float = 5.0
    dystrophic_solidity: float = 0.8
    dystrophic_circularity: float = 0.6
    angular_corner_fraction: float = 0.05
    angular_straight_fraction: float = 0.18
    compact_inscribed_ratio: float = 0.72
    angular_corner_alone: float = 0.15
    round_inscribed_ratio: float = 0.9
    lobulated_mm: float = 2.0
    pattern_fragment_mm: float = 2.0


@dataclass(frozen=True)
class AssessThresholds:
    """Likelihood bands of the BI-RADS categories.

    Source: ACR BI-RADS Atlas, 5th edition, 2013, "Guidance: assessment categories"
    (summarised by the Radiology Assistant, "BI-RADS for mammography and ultrasound 2013").
    """

    benign_max: float = 0.005
    """Category 2 (benign) up to this likelihood. The atlas gives "essentially 0 %"; we
    allow 0.5 % so that the typically benign forms (about 0.1-0.3 %) fall in it."""
    probably_benign_max: float = 0.02
    """Category 3 (probably benign) up to 2 % (atlas: "> 0 % but <= 2 %")."""
    c4a_max: float = 0.10
    """Category 4A (low suspicion) up to 10 % (atlas: "> 2 % to <= 10 %")."""
    c4b_max: float = 0.50
    """Category 4B (moderate suspicion) up to 50 % (atlas: "> 10 % to <= 50 %")."""
    c5_min: float = 0.95
    """Category 5 (highly suggestive) from 95 % (atlas: ">= 95 %"); 4C below."""
