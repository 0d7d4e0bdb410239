"""Which raw category names the aliases mapped, where, by which pattern, and which they did not.

:func:`qa.align.align` rewrites every object's category to its canonical name; this module looks at
the exports *before* that, so the report can say which annotator used which raw name how often. It uses
the same patterns and the same precedence as :func:`qa.align.resolve_category` (exact names win over
globs, globs over ``re:`` regular expressions; within a kind, the first pattern listed wins).
"""

from __future__ import annotations

from collections import defaultdict

from qa.align import compile_aliases
from qa.model import Export


def _first_match(name: str, compiled):
    for kind in ("exact", "glob", "regex"):
        for canonical, k, pattern, match in compiled:
            if k == kind and match(name):
                return canonical, pattern, kind
    return None, None, None


def alias_report(exports: list[Export], aliases: dict | None) -> dict:
    """Report how ``aliases`` map the raw category names of ``exports`` (call before alignment).

    Parameters
    ----------
    exports : list of Export
        The loaded exports, categories not yet rewritten.
    aliases : dict
        ``{canonical: [patterns]}`` as :func:`qa.align.align` takes it.

    Returns
    -------
    dict
        ``mapped``: one entry per raw name a pattern matched (``name``, ``category``, ``pattern``,
        ``kind``, ``objects``, ``annotators`` as ``{annotator: objects}``); ``canonical``: raw names no
        pattern matched that are themselves a canonical name; ``unmapped``: the other raw names, kept
        as they are; ``unused_patterns``: patterns that matched no name (``category``, ``pattern``).
        Lists are sorted by name.

    Raises
    ------
    ConfigError
        When a ``re:`` pattern does not compile.

    Examples
    --------
    >>> from qa.model import Category, Export
    >>> e = Export("alice", ".", "coco", categories={n: Category(n) for n in ("car", "car_7", "bus")})
    >>> r = alias_report([e], {"car": ["car_*", "auto"]})
    >>> [(m["name"], m["category"], m["pattern"]) for m in r["mapped"]]
    [('car_7', 'car', 'car_*')]
    >>> [c["name"] for c in r["canonical"]], [u["name"] for u in r["unmapped"]], r["unused_patterns"]
    (['car'], ['bus'], [{'category': 'car', 'pattern': 'auto'}])
    """
    compiled = compile_aliases(aliases)
    uses: dict[str, dict[str, int]] = defaultdict(dict)
    for export in exports:
        for name in export.categories:
            uses[name].setdefault(export.annotator, 0)
        for obj in export.objects:
            counts = uses[obj.category]
            counts[obj.annotator or export.annotator] = counts.get(obj.annotator or export.annotator, 0) + 1
    canonical_names = {canonical for canonical, *_ in compiled}
    hits: set[tuple[str, str]] = set()
    mapped, canonical, unmapped = [], [], []
    for name in sorted(uses):
        entry = {"name": name, "objects": sum(uses[name].values()), "annotators": dict(sorted(uses[name].items()))}
        target, pattern, kind = _first_match(name, compiled)
        if target is not None:
            hits.add((target, pattern))
            mapped.append({**entry, "category": target, "pattern": pattern, "kind": kind})
        elif name in canonical_names:
            canonical.append(entry)
        else:
            unmapped.append(entry)
    # a pattern shadowed by one of higher precedence still matched a name: it is not unused
    unused = [{"category": c, "pattern": p} for c, _k, p, match in compiled
              if (c, p) not in hits and not any(match(name) for name in uses)]
    return {"mapped": mapped, "canonical": canonical, "unmapped": unmapped, "unused_patterns": unused}


def _who(annotators: dict[str, int]) -> str:
    return ", ".join(f"{a} {n}" for a, n in annotators.items())


def render_text(report: dict) -> str:
    """The report as text lines for ``qa run`` (one line per raw name).

    Examples
    --------
    >>> print(render_text({"mapped": [{"name": "car_7", "category": "car", "pattern": "car_*",
    ...     "kind": "glob", "objects": 2, "annotators": {"bob": 2}}], "canonical": [], "unmapped":
    ...     [{"name": "bus", "objects": 1, "annotators": {"al": 1}}], "unused_patterns": []}))
    aliases: 1 name mapped, 1 not mapped
      car_7 -> car  glob car_*  (bob 2)
      bus           not mapped  (al 1)
    """
    mapped, canonical, unmapped = report["mapped"], report["canonical"], report["unmapped"]
    head = [f"{len(mapped)} name{'s' * (len(mapped) != 1)} mapped"]
    if canonical:
        head.append(f"{len(canonical)} already canonical")
    head.append(f"{len(unmapped)} not mapped")
    rows = [(m["name"], f"-> {m['category']}", f"{m['kind']} {m['pattern']}", _who(m["annotators"]))
            for m in mapped]
    rows += [(c["name"], "", "canonical", _who(c["annotators"])) for c in canonical]
    rows += [(u["name"], "", "not mapped", _who(u["annotators"])) for u in unmapped]
    lines = ["aliases: " + ", ".join(head)]
    if rows:
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        w2 = max(len(r[2]) for r in rows)
        for name, target, how, who in rows:
            lines.append(f"  {name.ljust(w0)} {target.ljust(w1)}  {how.ljust(w2)}  ({who})".rstrip())
    if report["unused_patterns"]:
        unused = ", ".join(f"{u['category']} <- {u['pattern']!r}" for u in report["unused_patterns"])
        lines.append(f"  patterns that matched no name: {unused}")
    return "\n".join(lines)
