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
        Annotators declaring different sizes for the same image. The minority is left out of the
        comparison for that image.

        ## Why it matters
        Masks at different sizes cannot be compared pixel for pixel; one export was resized.

        ## Example
        alice 1024x768, bob 512x384 for `room_7.jpg`.

        ## How to fix
        Export every annotator's labels at the original size.

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
}

for _code, (_name, _title) in ALIGN_CODES.items():
    _severity, _doc = _DOCS[_code]
    if _severity != ALIGN_SEVERITY[_code]:
        raise ValueError(f"{_code} is emitted as {ALIGN_SEVERITY[_code]} but documented as {_severity}")
    document(_code, _name, _title, _doc, severity=_severity)
