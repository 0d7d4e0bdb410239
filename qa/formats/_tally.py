"""Count skipped items per kind and report each kind once, pointing at its first occurrence.

An export with 170 keypoints should not print 170 lines: the loaders call :meth:`SkipTally.add` for
each skipped shape and :meth:`SkipTally.findings` once at the end.
"""

from __future__ import annotations

from qa.formats._findings import finding
from qa.model import Finding, Source


class SkipTally:
    """Skipped items by ``(code, kind)``: how many, and the first one's source and image.

    Examples
    --------
    >>> from qa.model import Source
    >>> t = SkipTally()
    >>> t.add("FMT012", "polyline", Source("a.xml", 0, section="polyline"), "img.jpg")
    >>> t.add("FMT012", "polyline", Source("a.xml", 1, section="polyline"), "img.jpg")
    >>> [str(f) for f in t.findings({"polyline": "polylines are not areas"})]
    ['a.xml: polyline[0]: FMT012 2 polyline shapes skipped: polylines are not areas (first one here)']
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], list] = {}

    def add(self, code: str, kind: str, source: Source | None, image: str | None = None) -> None:
        entry = self._items.setdefault((code, kind), [0, source, image])
        entry[0] += 1

    def merge(self, other: "SkipTally") -> None:
        """Add ``other``'s counts, which came after this tally's (its first items count only for kinds new
        here)."""
        for key, (n, source, image) in other._items.items():
            self._items.setdefault(key, [0, source, image])[0] += n

    def __len__(self) -> int:
        return sum(entry[0] for entry in self._items.values())

    def count(self, kind: str) -> int:
        return sum(entry[0] for (_, k), entry in self._items.items() if k == kind)

    def findings(self, reasons: dict[str, str], *, noun: str = "shape",
                 nouns: dict[str, str] | None = None) -> list[Finding]:
        """One finding per kind (of its code's severity), ``"<n> <kind> <noun>s skipped: <reason> (first one here)"``.

        ``nouns`` overrides ``noun`` for some kinds (``{"deleted": "object"}``).
        """
        out = []
        for (code, kind), (n, source, image) in self._items.items():
            reason = reasons.get(kind, "not an area")
            word = (nouns or {}).get(kind, noun)
            plural = "" if n == 1 else "s"
            first = " (first one here)" if n > 1 else ""
            out.append(finding(code, f"{n} {kind} {word}{plural} skipped: {reason}{first}", source,
                               image=image))
        return out
