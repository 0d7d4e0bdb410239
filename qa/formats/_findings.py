"""Finding codes raised while reading exports (format consistency, family FMT0xx).

These are reported, never raised: the object is left out and the run goes on. The rule registry
documents them next to the checks in ``qa.rules`` so ``qa rules explain FMT001`` works for both.

Each code has one severity (:data:`LOAD_SEVERITY`, ``error`` unless listed), the one ``qa rules list``
shows: :func:`finding` gives it to every finding of the code, so what the loaders report and what the
documentation says cannot differ. A case that deserves another severity gets a code of its own.
"""

from __future__ import annotations

from qa.model import Finding, Source

LOAD_CODES: dict[str, tuple[str, str]] = {
    # code: (kebab-case name, one-line title)
    "FMT001": ("invalid-polygon", "polygon with fewer than 3 points, an odd number of coordinates, non-finite "
                                  "values or a vertex far outside the image"),
    "FMT002": ("invalid-rle", "RLE whose counts are malformed or do not sum to height x width"),
    "FMT003": ("size-mismatch", "mask or PNG size differs from the image's declared size"),
    "FMT004": ("unknown-category", "object refers to a category the export does not define"),
    "FMT005": ("duplicate-id", "two items of one list share an id"),
    "FMT006": ("dangling-image-id", "object refers to an image the export does not define"),
    "FMT007": ("unsafe-path", "file name is absolute, climbs out of the export's folder, or links outside it"),
    "FMT008": ("image-too-large", "declared image size above the configured limit"),
    "FMT009": ("missing-file", "a file the export refers to is missing, not a PNG, truncated or unreadable"),
    "FMT010": ("segment-id-mismatch", "panoptic PNG and segments_info disagree on segment ids"),
    "FMT011": ("invalid-field", "a required field is missing or has the wrong type"),
    "FMT012": ("skipped-shape", "a shape that is not an area (polyline, points, tag, ...) is not compared"),
    "FMT013": ("skipped-annotation", "an object or annotation the tool marks as deleted or cancelled is left out"),
    "FMT014": ("field-fallback", "a field is missing or malformed and a documented fallback is used instead"),
    "FMT015": ("unread-item", "an area shape or a file the reader does not read (a mask shape, an unknown shape "
                              "type, a file of another format) is left out"),
    "FMT016": ("ignored-field", "an optional field (bbox, area, attributes, occluded, z_order, group) is "
                                "malformed and ignored; the object is kept"),
    "FMT020": ("png-encoding-mismatch", "label-map or mask PNG of another bit depth or colour type than its export expects"),
    "FMT021": ("mask-polarity", "which colour of a binary mask is foreground, as sniffed from the masks' border"),
    "FMT022": ("mask-polarity-doubtful", "the foreground colour of binary masks is undecided or looks inverted"),
    "FMT023": ("panoptic-two-channel", "panoptic PNGs in panopticapi's 2-channel format (R category, G instance) "
                                       "are read as such"),
}

LOAD_SEVERITY: dict[str, str] = {
    "FMT010": "warning", "FMT012": "info", "FMT013": "info", "FMT014": "warning", "FMT015": "warning",
    "FMT016": "warning",
    "FMT021": "info", "FMT022": "warning", "FMT023": "info",
}
"""The severity of each load-time code that is not ``error``."""


def severity_of(code: str) -> str:
    """The one severity of a load-time code.

    Examples
    --------
    >>> severity_of("FMT001"), severity_of("FMT012")
    ('error', 'info')
    """
    return LOAD_SEVERITY.get(code, "error")


def finding(code: str, message: str, source: Source | None = None, *, image: str | None = None,
            value=None, limit=None) -> Finding:
    """A load-time Finding with its code's severity; the annotator is filled in once the export is named."""
    if code not in LOAD_CODES:
        raise ValueError(f"{code} is not a load-time code; register it in LOAD_CODES")
    return Finding(code=code, severity=severity_of(code), message=message, image=image, source=source,
                   value=value, limit=limit)
