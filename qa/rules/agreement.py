"""Agreement codes (family AGR): what the comparison of the whole batch shows about the annotators.

They need every image pair of the batch, so no rule check raises them: ``qa run`` does, after the
comparison (:func:`qa.analytics.copies.identical_labels`). They are documented here so that ``qa rules
list`` and ``qa rules explain AGR001`` cover them, and packs select them, set their parameters and
their severity as for any rule (``[params.AGR001] min_share = 0.8``).
"""

from __future__ import annotations

from qa.rules._registry import document

document("AGR001", "identical-labels", "two annotators' labels are identical on a share of their images", """
    ## What it checks
    Pairs of annotators whose labels are identical on at least `min_share` of the images they
    both labelled (and on at least `min_images` images): every object of one matches an object
    of the other with the same category and a mask IoU of exactly 1, and nothing is left over.
    Images neither labelled do not count. One finding per pair, raised by `qa run`.

    ## Why it matters
    Independent annotators never draw the same pixels. Identical labels are copied work, or one
    export given twice under two names: the pair's agreement is 1 by construction, it inflates
    the batch's agreement and alpha, and it counts as two votes in a consensus.

    ## Example
    BU-BIL's `Person2_Amira` and `Person2_ImageJ`: identical masks on all 35 images.

    ## How to fix
    Check where the two exports came from; drop the copy, or have the images labelled again.

    ## Parameters
    - `min_share` (float, default 0.5): smallest share of the pair's labelled images that are identical.
    - `min_images` (int, default 3): fewest identical images for a finding.
""", severity="warning", level="run", params={"min_share": 0.5, "min_images": 3})
