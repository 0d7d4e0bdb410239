"""Align several exports into one batch: images by file name, categories by name and alias.

Mismatches are findings, never exceptions:

- ``ALN001`` an image is missing for some annotators;
- ``ALN002`` an export declares other sizes than the rest for some images, with another aspect ratio
  (crops): one finding per export naming the sizes; the export is left out of comparison on them;
- ``ALN003`` a category with objects is unknown to some annotator (neither declared nor used), or not
  in the declared category list;
- ``ALN004`` a file name could not be paired unambiguously;
- ``ALN005`` an export declares categories that no export has objects of and that other exports (or
  the declared list) do not declare: one info finding per export, however many;
- ``ALN006`` an export shares no image with any other export (nothing of it is compared);
- ``ALN007`` an export declared at another resolution (``rescale``) was scaled into the frame of the
  others: one info finding per export with the factors;
- ``ALN008`` an export labels some images at another size with the same aspect ratio: it is scaled
  into the frame of the others, one warning per export with the factors;
- ``ALN009`` with a reference: an annotator shares no compared image with it, so it gets no figure
  against it (and no gate check per annotator).

**Frames.** Each image's frame is the reference export's size when a reference labels it, else the
size most exports declare. An export at another size is scaled into that frame (polygons exactly, masks
by nearest-neighbour resampling: :mod:`qa.formats._scale`) when it is declared as rescaled or when its
aspect ratio matches within a pixel; otherwise it is left out of comparison on those images, reported
once per export with the sizes.

**Keys.** Images pair by normalised file name; by base name when folders differ between tools; and by
case-folded file stem when that pairs more images (raster exports, binary masks and label maps, are keyed
by their PNG's stem: ``seg_b01`` pairs with a COCO file's ``seg_B01.png``).

Only categories with objects count for ``ALN003``: a category an export lists but never uses cannot
make objects fail to match, so a COCO export of 2 categories against a COCO panoptic export declaring
the 133 of COCO panoptic gives warnings for the categories the panoptic export uses (which the COCO
export does not know) and one ``ALN005`` line for the rest.

Category aliases map messy names onto one category. A pattern is an exact name, a glob (``car_*``) or a
regular expression prefixed with ``re:`` (``re:^a?car_\\d+$``), matched against the whole name. Exact
names win over globs, globs over regular expressions; within a kind, the first pattern listed wins. As it
resolves each raw name, :func:`align` records which pattern matched it and how often each annotator used
it (``Batch.alias_report``; :func:`alias_report_text` prints it).
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter, defaultdict
from pathlib import PurePosixPath

from qa._text import visible
from qa.errors import ConfigError
from qa.model import Batch, Category, Export, Finding

ALIGN_CODES: dict[str, tuple[str, str]] = {
    "ALN001": ("image-missing", "an image is labelled by some annotators and not by others"),
    "ALN002": ("image-size-disagreement", "annotators declare different sizes for the same image"),
    "ALN003": ("category-unmatched", "a category with objects is unknown to some annotator or not in the "
                                     "declared list"),
    "ALN004": ("ambiguous-file-name", "a file name pairs with more than one image"),
    "ALN005": ("declared-only-categories", "an export declares categories no export has objects of and others "
                                           "do not declare"),
    "ALN006": ("no-shared-images", "an export shares no image with any other export, so nothing of it is compared"),
    "ALN007": ("export-rescaled", "an export declared at another resolution was scaled into the others' frame"),
    "ALN008": ("export-scale-detected", "an export labels images at another size with the same aspect ratio and "
                                        "was scaled into the others' frame"),
    "ALN009": ("not-scored-against-reference", "an annotator labels none of the images the reference labels, so it "
                                               "is not scored against it"),
}

ALIGN_SEVERITY: dict[str, str] = {"ALN001": "warning", "ALN002": "error", "ALN003": "warning",
                                  "ALN004": "warning", "ALN005": "info", "ALN006": "error", "ALN007": "info",
                                  "ALN008": "warning", "ALN009": "warning"}
"""The one severity of each alignment code (what ``qa rules list`` shows)."""


def _finding(code: str, message: str, **where) -> Finding:
    """An alignment finding with its code's severity."""
    return Finding(code, ALIGN_SEVERITY[code], message, **where)


def compile_aliases(aliases: dict[str, list[str] | str] | None):
    """Turn ``{canonical: [patterns]}`` into a list of ``(canonical, kind, pattern, matcher)``.

    Raises :class:`~qa.errors.ConfigError` on a regular expression that does not compile.
    """
    compiled = []
    for canonical, patterns in (aliases or {}).items():
        if isinstance(patterns, str):
            patterns = [patterns]
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise ConfigError(f"alias pattern for {canonical!r} must be a string, got {pattern!r}")
            if pattern.startswith("re:"):
                try:
                    rx = re.compile(pattern[3:])
                except re.error as exc:
                    raise ConfigError(f"alias {pattern!r} for {canonical!r} is not a valid regular "
                                      f"expression: {exc}") from None
                compiled.append((canonical, "regex", pattern, rx.fullmatch))
            elif any(ch in pattern for ch in "*?["):
                rx = re.compile(fnmatch.translate(pattern))
                compiled.append((canonical, "glob", pattern, rx.match))
            else:
                compiled.append((canonical, "exact", pattern, pattern.__eq__))
    return compiled


def _resolve(name: str, compiled) -> tuple[str, str | None, str | None]:
    """``(canonical, pattern, kind)`` for ``name``; ``(name, None, None)`` when no pattern matches."""
    for kind in ("exact", "glob", "regex"):
        for canonical, k, pattern, match in compiled:
            if k == kind and match(name):
                return canonical, pattern, kind
    return name, None, None


def resolve_category(name: str, compiled) -> str:
    """The canonical name for ``name``: exact aliases win over globs, globs over regexes; within a kind,
    the first pattern listed wins.

    Examples
    --------
    >>> resolve_category("car_7", compile_aliases({"car": ["car_*"], "vehicle": ["re:.*"]}))
    'car'
    """
    return _resolve(name, compiled)[0]


def _alias_report(uses: dict[str, dict[str, int]], resolved: dict[str, tuple], compiled) -> dict:
    """The alias report from the raw names' uses and how :func:`align` resolved each (see ``Batch.alias_report``)."""
    canonical_names = {canonical for canonical, *_ in compiled}
    hits: set[tuple[str, str]] = set()
    mapped, canonical, unmapped = [], [], []
    for name in sorted(uses):
        entry = {"name": name, "objects": sum(uses[name].values()), "annotators": dict(sorted(uses[name].items()))}
        target, pattern, kind = resolved[name]
        if pattern is not None:
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


def alias_report_text(report: dict) -> str:
    """``Batch.alias_report`` as text lines for ``qa run`` (one line per raw name).

    Examples
    --------
    >>> print(alias_report_text({"mapped": [{"name": "car_7", "category": "car", "pattern": "car_*",
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
    rows = [tuple(visible(cell) for cell in row) for row in rows]  # names from exports: one line each
    lines = ["aliases: " + ", ".join(head)]
    if rows:
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        w2 = max(len(r[2]) for r in rows)
        for name, target, how, who in rows:
            lines.append(f"  {name.ljust(w0)} {target.ljust(w1)}  {how.ljust(w2)}  ({who})".rstrip())
    if report["unused_patterns"]:
        unused = ", ".join(f"{u['category']} <- {u['pattern']!r}" for u in report["unused_patterns"])
        lines.append(visible(f"  patterns that matched no name: {unused}"))
    return "\n".join(lines)


def _rekey_by_basename(exports: list[Export]) -> tuple[bool, list[Finding]]:
    """Whether images should pair by base name, and the ALN004 findings when they cannot.

    Images pair by base name when full names differ across exports (tools write different folders),
    pairing by base name pairs more images than pairing by full name, and every base name is unique
    within each export. When a repeated base name prevents it, each repetition is reported.
    """
    key_sets = [set(e.images) for e in exports]
    if len(exports) < 2 or all(ks == key_sets[0] for ks in key_sets):
        return False, []
    shared_full = set.intersection(*key_sets)
    bases = [set(PurePosixPath(k).name for k in ks) for ks in key_sets]
    if len(set.intersection(*bases)) <= len(shared_full):
        return False, []
    findings = []
    for e in exports:
        by_base: dict[str, list[str]] = defaultdict(list)
        for key in sorted(e.images):
            by_base[PurePosixPath(key).name].append(key)
        for base, keys in sorted(by_base.items()):
            if len(keys) > 1:
                findings.append(_finding(
                    "ALN004",
                    f"base name {base!r} occurs {len(keys)} times in {e.annotator}'s export ({', '.join(keys)}), "
                    "so images are paired by full file name although folders differ between exports; "
                    "make the folders agree", annotator=e.annotator, image=keys[0]))
    return not findings, findings


RASTER_FORMATS = ("binary_masks", "labelmap")
"""Formats whose image keys are their PNGs' case-folded stems (:func:`qa.formats.labelmap.pair_files`)."""


def _stem(key: str, fmt: str) -> str:
    """The case-folded file stem of an image key (a raster export's key is one already)."""
    if fmt in RASTER_FORMATS:
        return key.casefold()
    return PurePosixPath(key).stem.casefold()


def _rekey_by_stem(exports: list[Export]) -> bool:
    """Whether images should pair by case-folded file stem: keys differ across exports, pairing by stem
    pairs more images, and every stem is unique within each export."""
    key_sets = [set(e.images) for e in exports]
    if len(exports) < 2 or all(ks == key_sets[0] for ks in key_sets):
        return False
    stems = []
    for e, keys in zip(exports, key_sets):
        mine = {_stem(k, e.format) for k in keys}
        if len(mine) != len(keys):
            return False
        stems.append(mine)

    def paired(sets):
        counts = Counter(k for ks in sets for k in ks)
        return sum(1 for n in counts.values() if n > 1)

    return paired(stems) > paired(key_sets)


def _rekey(e: Export, key_of) -> None:
    """Rewrite an export's image keys (images, objects, id maps) with ``key_of(old key)``."""
    renamed = {key_of(k): k for k in e.images}
    e.images = {new: e.images[old] for new, old in renamed.items()}
    for new, image in e.images.items():
        image.key = new
    back = {old: new for new, old in renamed.items()}
    for obj in e.objects:
        obj.image = back.get(obj.image, obj.image)
    e.id_maps = {back.get(k, k): v for k, v in e.id_maps.items()}


def _names(names, shown: int = 5) -> str:
    """``'a', 'b' and 3 more``: the first few of a sorted list of names."""
    head = ", ".join(map(repr, names[:shown]))
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"


def _category_findings(exports, names, known_by, mapping, canonical, declared) -> list[Finding]:
    """ALN003 for each category with objects that some annotator does not know (or the declared list
    lacks); one ALN005 per export for the categories it declares that no export has objects of."""
    used_by: dict[str, Counter] = defaultdict(Counter)
    for e in exports:
        if e.census is not None:  # a streamed export: its counts, canonical already
            for category, n in e.census.per_category.items():
                used_by[category][e.annotator] += n
        for obj in e.objects:  # categories are canonical already
            used_by[obj.category][e.annotator] += 1
    findings = []
    for c in canonical:
        users = used_by.get(c)
        if not users:
            continue
        n = sum(users.values())
        objects = f"{n} object{'s' * (n != 1)}"
        if declared and c not in declared:
            raws = sorted(r for r, k in mapping.items() if k == c)
            findings.append(_finding("ALN003", f"category {c!r} (from {', '.join(map(repr, raws))}; {objects}) is "
                                               "not in the declared category list; add an alias or the category"))
        elif len(exports) > 1 and len(known_by[c]) < len(exports):
            missing = sorted(set(names) - known_by[c])
            findings.append(_finding("ALN003", f"category {c!r} is used by {', '.join(sorted(users))} but not by "
                                               f"{', '.join(missing)}, which {'does' if len(missing) == 1 else 'do'} "
                                               f"not declare it either ({objects}); add an alias if it is another "
                                               "name for a known category"))
    for e in exports:
        lone = []
        others: set[str] = set()
        for c in sorted(e.categories):  # canonical names by now
            if c in used_by:
                continue
            lacking = set(names) - known_by[c]
            outside = bool(declared) and c not in declared
            if lacking or outside:
                lone.append(c)
                others |= lacking
                if outside:
                    others.add("the declared category list")
        if lone:
            who = sorted(others - {"the declared category list"}) + sorted(others & {"the declared category list"})
            findings.append(_finding(
                "ALN005", f"{e.annotator} declares {len(lone)} categor{'y' if len(lone) == 1 else 'ies'} that no "
                          f"export has objects of and {' or '.join([', '.join(who[:-1]), who[-1]] if len(who) > 1 else who)} "
                          f"{'does' if len(who) == 1 else 'do'} not declare: {_names(lone)}; declared-only categories "
                          "take no part in the comparison", annotator=e.annotator))
    return findings


def _sizes(items, shown: int = 4) -> str:
    """``seg_b01 900x321 (frame 1024x811), ... and 3 more``."""
    parts = [f"{key} {w}x{h} (frame {fw}x{fh})" for key, (w, h), (fw, fh) in items[:shown]]
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(parts) + more


def _factors(items) -> str:
    """The distinct scalings of a list of ``(key, size, frame)``: ``512x256 -> 4096x2304 (x8, y9)``."""
    seen = Counter((size, frame) for _, size, frame in items)
    parts = []
    for ((w, h), (fw, fh)), n in seen.most_common():
        parts.append(f"{w}x{h} -> {fw}x{fh} (x{fw / w:.4g}, y{fh / h:.4g}; {n} image{'s' * (n != 1)})")
    return "; ".join(parts)


def same_aspect(size, frame) -> bool:
    """Whether scaling ``size`` by one factor gives ``frame`` within a pixel on both axes.

    Examples
    --------
    >>> same_aspect((512, 384), (1024, 768)), same_aspect((512, 256), (4096, 2304))
    (True, False)
    >>> same_aspect((333, 250), (1000, 751))  # rounded to whole pixels
    True
    """
    (w, h), (fw, fh) = size, frame
    return abs(w * fh / h - fw) <= 1.0 and abs(h * fw / w - fh) <= 1.0


def _fit_frames(export: Export, items, *, declared: bool, total: int, findings: list) -> set:
    """Scale an export's images at another size into their frames where it may be; return the keys left
    out, with one finding per export for each outcome (ALN007, ALN008, ALN002)."""
    from qa.formats._scale import scale_object

    if declared:
        scaled, crops = items, []
    else:
        scaled = [item for item in items if same_aspect(item[1], item[2])]
        crops = [item for item in items if not same_aspect(item[1], item[2])]
    failed: set = set()
    if scaled:
        keys = {key: (size, frame) for key, size, frame in scaled}
        for obj in export.objects:
            hit = keys.get(obj.image)
            if hit is not None:
                (w, h), (fw, fh) = hit
                if not scale_object(obj, fw / w, fh / h, fh, fw):
                    failed.add(obj.image)
        if failed:  # panoptic segments are not scaled: those images stay out
            crops += [item for item in scaled if item[0] in failed]
            scaled = [item for item in scaled if item[0] not in failed]
        for key, (w, h), (fw, fh) in scaled:
            image = export.images[key]
            image.scaled_from = (w, h)
            image.width, image.height = fw, fh
        if scaled:
            n = len(scaled)
            how = ("declared at another resolution (rescale)" if declared else
                   "at another size with the same aspect ratio")
            findings.append(_finding(
                "ALN007" if declared else "ALN008",
                f"{export.annotator} labels {n} of {total} image{'s' * (total != 1)} {how}: scaled into the frame "
                f"of the others, {_factors(scaled)}; polygons scale exactly, masks by nearest neighbour (their "
                f"outlines move by up to half a source pixel)", annotator=export.annotator, image=scaled[0][0]))
    if crops:
        n = len(crops)
        why = ("panoptic PNGs are not resampled" if failed and len(failed) == n else
               "another aspect ratio (a crop or another frame cannot be scaled)")
        if not declared:
            why += "; declare rescale for a resized export"
        findings.append(_finding(
            "ALN002", f"image sizes disagree: {export.annotator} declares other sizes on {n} of {total} "
                      f"image{'s' * (total != 1)}, {why}: {_sizes(crops)}; {export.annotator} is left out of "
                      f"comparison on them", annotator=export.annotator, image=crops[0][0]))
    return {key for key, _, _ in crops}


def _isolated(exports: list[Export]) -> list[Finding]:
    """ALN006 for each export none of whose image keys another export has (images left out for their
    size are ALN002's)."""
    if len(exports) < 2:
        return []
    shared = Counter(k for e in exports for k in e.images)
    out = []
    for e in exports:
        if e.images and not any(shared[k] > 1 for k in e.images):
            others = [o for o in exports if o is not e and o.images]
            example = next(iter(e.images))
            hint = (f"; its image keys look like {example!r}, the others' like {next(iter(others[0].images))!r}"
                    if others else "")
            out.append(_finding("ALN006", f"{e.annotator} shares no image with any other export, so nothing of it "
                                          f"is compared{hint}", annotator=e.annotator))
    return out


def align(exports: list[Export], *, aliases: dict | None = None,
          categories: list[str] | None = None, reference: str | None = None, rescale=()) -> Batch:
    """Pair the images and categories of several exports.

    Parameters
    ----------
    exports : list of Export
        One per annotator; names must be distinct.
    aliases : dict, optional
        ``{canonical name: [patterns]}``; see the module docstring.
    categories : list of str, optional
        The declared category list. Objects whose canonical category is not in it are reported
        (``ALN003``) and kept.
    reference : str, optional
        The reference export: its size is the frame of every image it labels.
    rescale : collection of str, optional
        Annotators whose exports are declared at another resolution: their images at another size are
        scaled into the frame whatever the aspect ratio (see the module's notes on frames).

    Returns
    -------
    Batch
        Objects' ``image`` and ``category`` fields are rewritten (a streamed export's census counts by
        canonical category) to the canonical keys. ``aliases`` maps
        each rewritten raw name to its category; ``alias_report`` says, for every raw name, which
        pattern (and kind: exact, glob, regex) mapped it and how many objects each annotator gave it,
        which raw names stayed as they are, and which patterns matched no name.

    Raises
    ------
    ConfigError
        When two exports have the same annotator name or an alias does not compile.
    """
    names = [e.annotator for e in exports]
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise ConfigError(f"annotator {dupes[0]!r} is given more than once; give each export its own name")
    compiled = compile_aliases(aliases)
    findings: list[Finding] = [f for e in exports for f in e.findings]

    # Categories: canonical names, and which annotators know each one; the raw names' uses and the
    # pattern that resolved each are recorded for the alias report before the objects are rewritten.
    mapping: dict[str, str] = {}
    resolved: dict[str, tuple] = {}
    uses: dict[str, dict[str, int]] = defaultdict(dict)
    known_by: dict[str, set[str]] = defaultdict(set)
    canonical_categories: dict[str, Category] = {}
    for e in exports:
        for raw in e.categories:
            uses[raw].setdefault(e.annotator, 0)
        for obj in e.objects:
            who = obj.annotator or e.annotator
            uses[obj.category][who] = uses[obj.category].get(who, 0) + 1
        counted = e.census.per_category if e.census is not None else {}
        for category, n in counted.items():  # a streamed export holds counts, not objects
            uses[category][e.annotator] = uses[category].get(e.annotator, 0) + n
        used = {o.category for o in e.objects} | set(counted) | set(e.categories)
        for raw in sorted(used):
            if raw not in resolved:
                resolved[raw] = _resolve(raw, compiled)
            canonical = resolved[raw][0]
            mapping[raw] = canonical
            known_by[canonical].add(e.annotator)
            if canonical not in canonical_categories:
                source = e.categories.get(raw) or e.categories.get(canonical)
                canonical_categories[canonical] = Category(
                    name=canonical,
                    isthing=source.isthing if source else True,
                    supercategory=source.supercategory if source else "",
                )
        for obj in e.objects:
            obj.category = mapping[obj.category]
        if e.census is not None:
            per_category: dict[str, int] = {}
            for category, n in e.census.per_category.items():
                per_category[mapping[category]] = per_category.get(mapping[category], 0) + n
            e.census.per_category = per_category
        e.categories = {mapping[k]: canonical_categories[mapping[k]] for k in e.categories}
    findings.extend(_category_findings(exports, names, known_by, mapping, sorted(canonical_categories),
                                       set(categories or [])))

    # Images: pair by normalised file name, or by base name when folders differ between tools.
    rekey, ambiguous = _rekey_by_basename(exports)
    findings.extend(ambiguous)
    if rekey:
        for e in exports:
            _rekey(e, lambda k: PurePosixPath(k).name)
    if _rekey_by_stem(exports):
        for e in exports:
            _rekey(e, lambda k, fmt=e.format: _stem(k, fmt))

    images = {}
    coverage = {}
    other_size: dict[str, list] = defaultdict(list)  # annotator -> [(key, (w, h), frame)]
    frame_of: dict[str, tuple[int, int]] = {}
    all_keys = sorted({k for e in exports for k in e.images})
    for key in all_keys:
        holders = [e for e in exports if key in e.images]
        sizes = Counter((e.images[key].width, e.images[key].height) for e in holders)
        frame, _ = sizes.most_common(1)[0]
        ref = next((e for e in holders if e.annotator == reference), None)
        if ref is not None:
            frame = (ref.images[key].width, ref.images[key].height)
        frame_of[key] = frame
        for e in holders:
            size = (e.images[key].width, e.images[key].height)
            if size != frame:
                other_size[e.annotator].append((key, size, frame))
        if len(holders) < len(exports):
            missing = sorted(set(names) - {e.annotator for e in holders})
            findings.append(_finding("ALN001",
                                     f"image is not labelled by {', '.join(missing)}", image=key))
    left_out: dict[str, set] = {}
    by_name = {e.annotator: e for e in exports}
    for name, items in other_size.items():
        left_out[name] = _fit_frames(by_name[name], items, declared=name in set(rescale or ()),
                                     total=len(by_name[name].images), findings=findings)
    for key in all_keys:
        holders = [e for e in exports if key in e.images and key not in left_out.get(e.annotator, ())]
        first = next((e for e in holders if (e.images[key].width, e.images[key].height) == frame_of[key]),
                     holders[0] if holders else None)
        images[key] = (first or next(e for e in exports if key in e.images)).images[key]
        coverage[key] = tuple(e.annotator for e in holders)
    findings.extend(_isolated(exports))
    if reference is not None and reference in names:
        scored = {a for holders in coverage.values() if reference in holders for a in holders}
        reference_images = sum(reference in holders for holders in coverage.values())
        for e in exports:
            if e.annotator != reference and e.images and e.annotator not in scored:
                findings.append(_finding(
                    "ALN009", f"{e.annotator} labels none of the {reference_images} "
                              f"image{'s' * (reference_images != 1)} the reference "
                              f"{reference} labels, so it is not scored against it (no figure, no gate check "
                              "per annotator)", annotator=e.annotator))
    return Batch(
        annotators=names,
        exports={e.annotator: e for e in exports},
        images=images,
        categories=dict(sorted(canonical_categories.items())),
        coverage=coverage,
        findings=findings,
        aliases={raw: c for raw, c in sorted(mapping.items()) if raw != c},
        alias_report=_alias_report(uses, resolved, compiled),
    )
