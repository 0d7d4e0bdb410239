"""Alignment codes (family ALN), raised by :func:`qa.align.align` and documented here.

They are findings about how the annotators' exports pair up (images by file name, categories by
name and alias), listed by ``qa rules list`` and explained by ``qa rules explain ALN001``.
"""

from __future__ import annotations

from qa.align import ALIGN_CODES, ALIGN_SEVERITY
from qa.rules._registry import document

_DOCS = {
    "ALN001": ("warning", """
        ## What it checks
        Images labelled by some annotators and not by others.

        ## Why it matters
        Agreement is only measured where everyone labelled; a missing image is a gap in the batch
        that can hide a whole annotator's difficulties.

        ## Example
        `street_0042.png` is in alice's and bob's exports but not in carol's.

        ## How to fix
        Re-export the missing annotator's work, or check the file names pair (folders differ
        between tools; alignment falls back to base names when they are unique).

        ## Parameters
        None.
    """),
    "ALN002": ("error", """
        ## What it checks
        An export declaring other sizes than the image's frame (the reference's size, else the size
        most exports declare) with another aspect ratio, so it cannot be scaled: a crop, or another
        frame. One finding per export, naming the images and sizes; the export is left out of the
        comparison on those images. (An export at another size with the same aspect ratio is scaled,
        ALN008; one declared as rescaled is scaled whatever its aspect ratio, ALN007.)

        ## Why it matters
        Masks of different frames cannot be compared pixel for pixel: where the crop lies in the
        image is not known.

        ## Example
        BU-BIL's crowd workers: `seg_b01 900x321 (frame 1024x811)` on 33 of 35 images.

        ## How to fix
        Export every annotator's labels in the original frame; declare `rescale` for an export that
        was resized unevenly (x/8, y/9).

        ## Parameters
        None.
    """),
    "ALN003": ("warning", """
        ## What it checks
        A category that has objects in some export and that another annotator neither declares
        nor uses, or that is not in the declared category list (the manifest's `categories`).
        One finding per category. A category an export declares but never uses is not one of
        these (see ALN005).

        ## Why it matters
        Objects under a name only one annotator knows cannot match the others' objects, so they
        count as misses and extras instead of agreement.

        ## Example
        `car_1404` used by one LabelMe user where the others write `car`.

        ## How to fix
        Add an alias (`--alias car=car_*` or `[aliases]` in the manifest) or the category.

        ## Parameters
        None.
    """),
    "ALN004": ("warning", """
        ## What it checks
        A file name that pairs with more than one image.

        ## Why it matters
        The objects could be compared against the wrong image.

        ## Example
        `a/img1.png` and `b/img1.png` in one export when another export has `img1.png`.

        ## How to fix
        Give images unique names, or keep the same folder layout in every export.

        ## Parameters
        None.
    """),
    "ALN005": ("info", """
        ## What it checks
        Categories an export declares (a COCO `categories` list, a CVAT `<meta>`) that no export
        has objects of and that another export, or the declared category list, does not declare.
        One finding per export, naming the first few.

        ## Why it matters
        Nothing: a category without objects cannot disagree. A COCO panoptic export declaring all
        133 COCO panoptic categories against a COCO export declaring two would otherwise flood
        the run with one warning per category, and a gate on warnings would fail for it.

        ## Example
        A COCONut relabel declaring 133 categories against a COCO file declaring `person` and
        `potted plant`: one line for the 110 or so categories neither labelled.

        ## How to fix
        Nothing; trim the category lists to the guideline's if the line is in the way.

        ## Parameters
        None.
    """),
    "ALN006": ("error", """
        ## What it checks
        An export none of whose images another export has, so nothing of it is compared. The
        message shows one image key of the export and one of another, which usually shows why.

        ## Why it matters
        A run that compares nothing would otherwise look like a clean run: no disagreement
        because no comparison.

        ## Example
        `qa run gold=GoldStandard/ staple=consensus.json` where the JSON names `B01.jpg` and the
        masks are `seg_B01.png`.

        ## How to fix
        Make the file names agree (images pair by file name, base name, or case-folded stem).

        ## Parameters
        None.
    """),
    "ALN007": ("info", """
        ## What it checks
        An export declared at another resolution (`rescale = true` in the manifest, `--rescale NAME`)
        whose images are at other sizes than the frame: its labels were scaled into the frame, each
        axis by its own factor. One finding per export, with the factors.

        ## Why it matters
        Polygons scale exactly; masks are resampled by nearest neighbour, so their outlines move by
        up to half a source pixel (`factor / 2` pixels of the frame when upscaling): boundary
        figures at smaller tolerances measure the resampling too.

        ## Example
        airo's COCO export of a CVAT task: `512x256 -> 4096x2304 (x8, y9)`.

        ## How to fix
        Nothing; export at the original size for exact masks.

        ## Parameters
        None.
    """),
    "ALN009": ("warning", """
        ## What it checks
        With a reference (`--reference NAME`, `role = "reference"`): an annotator that labels none of
        the images the reference labels (after frames are fitted), so it has no figure against the
        reference.

        ## Why it matters
        A gate per annotator (`f1 = { min = 0.9, per = "annotator" }`) checks the annotators that have
        the figure: one the reference never saw would pass unchecked.

        ## Example
        Honeypots on 20 images; carol's share of the batch has none of them.

        ## How to fix
        Put reference images into every annotator's share, or gate the pairwise figures for them.

        ## Parameters
        None.
    """),
    "ALN008": ("warning", """
        ## What it checks
        An export whose images are at other sizes than the frame with the same aspect ratio (within
        a pixel): it was taken for a resized export and scaled into the frame. One finding per
        export, with the factors.

        ## Why it matters
        A uniform resize is the likely cause, but a same-shaped crop would be scaled wrongly;
        the finding says it happened so it can be checked.

        ## Example
        bob's masks at 512x384 where the others' are 1024x768 (x2, y2).

        ## How to fix
        Declare the export as rescaled (`rescale = true`) to confirm it, or export at the original
        size.

        ## Parameters
        None.
    """),
}

for _code, (_name, _title) in ALIGN_CODES.items():
    _severity, _doc = _DOCS[_code]
    if _severity != ALIGN_SEVERITY[_code]:
        raise ValueError(f"{_code} is emitted as {ALIGN_SEVERITY[_code]} but documented as {_severity}")
    document(_code, _name, _title, _doc, severity=_severity)
