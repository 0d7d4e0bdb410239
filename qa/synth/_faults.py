"""What ``qa synth`` can plant: the fault table, the rule each fault targets, and the ``--faults`` parser.

The two tables at the top are the single source for everything else (the planted-fault manifest, the
CLI help, ``docs/synth.md``). Rule ids are placeholders named after the families of the rules issue;
the rules code maps them onto its own ids by :data:`RULES`' descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qa.errors import ConfigError

RULES: dict[str, str] = {
    # placeholder rule id: what the rule checks (a planted fault names the id it should trigger)
    "OCC001": "object flagged occluded while no other thing overlaps or touches it within k px",
    "OCC002": "object covered beyond a share by things above it (z-order) but not flagged occluded",
    "OCC004": "occluded flag disagrees between annotators on the same object",
    "LAY001": "overlapping objects share one z_order",
    "LAY002": "a stuff region lies above a thing in z-order",
    "LAY003": "object left less than 5% visible by the objects above it",
    "LAY005": "z-order of a matched overlapping pair reversed between annotators",
    "VTX001": "vertices per 100 px of perimeter below the category's bound",
    "VTX002": "vertices per 100 px of perimeter above the category's bound",
    "VTX003": "too few vertices",
    "VTX004": "duplicate consecutive vertices",
    "VTX005": "redundant near-collinear vertex runs",
    "VTX006": "self-intersecting polygon",
    "VTX007": "sliver or zero-area polygon",
    "VTX008": "vertices outside the image",
    "FMT101": "bbox or area inconsistent with the mask",
}


@dataclass(frozen=True, slots=True)
class FaultType:
    """One kind of planted fault.

    ``kind`` is ``"noise"`` for annotator-wide noise models (one manifest record per annotator),
    ``"object"`` for per-object agreement faults, ``"rule"`` for per-object rule faults and ``"effect"``
    for what the noise did to an object that no planted fault explains (recorded, never requested). ``value``
    names the parameter that ``name=VALUE`` sets; ``params`` are the defaults. ``rule`` is the
    placeholder rule id the fault should trigger (None when it targets agreement metrics only) and
    ``also`` the rules it may trigger as a side effect.
    """

    kind: str
    value: str
    params: dict
    rule: str | None
    also: tuple[str, ...]
    doc: str


FAULTS: dict[str, FaultType] = {
    # --- annotator-wide noise models (agreement metrics) ---
    "jitter": FaultType("noise", "sigma_px", {"sigma_px": 0.5, "categories": "all"}, None, (),
                        "Gaussian noise of sigma_px on every vertex (shared stuff vertices move together)"),
    "dilate": FaultType("noise", "px", {"px": 2.0, "categories": "things"}, None, (),
                        "outline offset by px along its normals (negative erodes), mitre joins"),
    "simplify": FaultType("noise", "tolerance_px", {"tolerance_px": 1.0, "categories": "all"}, None, ("VTX001",),
                          "Douglas-Peucker simplification at tolerance_px (a part keeps at least 4 vertices)"),
    "shift": FaultType("noise", "pair", {"pair": "road/sidewalk", "px": 3.0}, None, (),
                       "the boundary between categories A/B moved px into B (A grows; negative: B grows)"),
    # --- per-object agreement faults ---
    "miss_small": FaultType("object", "area_px", {"area_px": 1024.0, "p": 0.9}, None, (),
                            "a thing under area_px (truth raster area) is left out with probability p; "
                            "only things that occlude nothing are candidates"),
    "swap": FaultType("object", "pair", {"pair": "bicycle/person", "p": 0.2}, None, (),
                      "a thing of category A is labelled B (and B labelled A) with probability p"),
    "drop_occluded": FaultType("object", "p", {"p": 0.5, "min_share": 0.25}, "OCC002", ("OCC004",),
                               "an occluded thing covered by at least min_share loses its flag with probability p"),
    "zorder": FaultType("object", "p", {"p": 0.3, "min_overlap_px": 50.0, "max_share": 0.2}, "LAY005", (),
                        "an overlapping thing pair has its z_order swapped with probability p (pairs that "
                        "would cover the new back object by more than max_share are skipped)"),
    # --- per-object rule faults (n per image) ---
    # (pair and isolation faults first: they need objects no other fault has touched)
    "zorder_equal": FaultType("rule", "n", {"n": 1, "min_overlap_px": 20.0}, "LAY001", (),
                              "the back object of an overlapping thing pair given the front one's z_order"),
    "stuff_above_thing": FaultType("rule", "n", {"n": 1, "min_overlap_px": 20.0}, "LAY002", ("LAY005",),
                                   "a stuff region's z_order raised just above the lowest thing it overlaps"),
    "occluded_isolated": FaultType("rule", "n", {"n": 1, "gap_px": 10.0}, "OCC001", ("OCC004",),
                                   "occluded flag set on a thing with no other thing within gap_px"),
    "duplicate_vertices": FaultType("rule", "n", {"n": 1, "repeats": 1}, "VTX004", (),
                                    "a vertex repeated right after itself"),
    "self_intersection": FaultType("rule", "n", {"n": 1}, "VTX006", (),
                                   "two consecutive vertices swapped so that the outline crosses itself"),
    "sliver": FaultType("rule", "n", {"n": 1, "length_px": 30.0, "width_px": 0.3}, "VTX007", (),
                        "an extra thin quadrilateral object away from other things"),
    "zero_area": FaultType("rule", "n", {"n": 1, "length_px": 30.0}, "VTX007", ("VTX005", "VTX006"),
                           "an extra object whose 4 vertices lie on one line"),
    "outside_image": FaultType("rule", "n", {"n": 1, "px": 8.0}, "VTX008", (),
                               "the vertex nearest an image edge moved px beyond it"),
    "too_few_vertices": FaultType("rule", "n", {"n": 1, "vertices": 3}, "VTX003", ("VTX001",),
                                  "an outline replaced by `vertices` of its own vertices (3: a triangle)"),
    "over_dense": FaultType("rule", "n", {"n": 1, "spacing_px": 1.0}, "VTX002", ("VTX005",),
                            "an outline resampled with a vertex every spacing_px"),
    "bbox_area": FaultType("rule", "n", {"n": 1, "area_factor": 1.5, "bbox_grow": 0.2}, "FMT101", (),
                           "declared area times area_factor and bbox grown by bbox_grow of its size per side"),
    # --- side effects of the noise, recorded per object (not requested with --faults) ---
    "covered_unflagged": FaultType("effect", "covered_share", {"covered_share": 0.25}, "OCC002", (),
                                   "noise left an unflagged thing covered by at least covered_share "
                                   "(for example a small thing next to a dilated one)"),
    "flagged_isolated": FaultType("effect", "gap_px", {"gap_px": 2.0}, "OCC001", (),
                                  "noise left a flagged thing with no other thing within gap_px"),
    "hidden": FaultType("effect", "visible_share", {"visible_share": 0.05}, "LAY003", (),
                        "noise left a thing less than visible_share visible"),
}

RULE_FAULTS = tuple(name for name, f in FAULTS.items() if f.kind == "rule")
"""The per-object rule faults, in the order they are planted; ``rule_faults[=N]`` selects them all."""

ANNOTATOR_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")


def annotator_names(k: int) -> list[str]:
    """The names of ``k`` synthetic annotators.

    Examples
    --------
    >>> annotator_names(3)
    ['alice', 'bob', 'carol']
    >>> annotator_names(9)[-1]
    'annotator09'
    """
    if k <= len(ANNOTATOR_NAMES):
        return list(ANNOTATOR_NAMES[:k])
    return [f"annotator{i + 1:02d}" for i in range(k)]


@dataclass(slots=True)
class FaultSpec:
    """One fault planted for one annotator, with every parameter resolved."""

    annotator: str
    fault: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        text = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.annotator}:{self.fault}:{text}"


def _number(text: str, *, where: str):
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--faults {where}: {text!r} is not a number") from None
    return int(value) if value.is_integer() and "." not in text else value


def _coerce(key: str, text: str, default, *, where: str):
    if key in ("pair", "categories"):
        return text
    if isinstance(default, str):
        return text
    return _number(text, where=where)


def parse_faults(specs: list[str], annotators: list[str]) -> list[FaultSpec]:
    """Parse ``--faults`` items of the form ``ANNOTATOR:FAULT[=VALUE][,KEY=VALUE...]``.

    ``ANNOTATOR`` is a name, a 1-based position or ``*`` (every annotator); ``FAULT`` is a key of
    :data:`FAULTS` or ``rule_faults`` (every rule fault); ``VALUE`` sets the fault's main parameter.
    The single item ``none`` plants nothing.

    Raises
    ------
    ConfigError
        On an unknown annotator, fault or parameter, or a value that does not parse.

    Examples
    --------
    >>> [str(f) for f in parse_faults(["bob:dilate=2"], ["alice", "bob"])]
    ['bob:dilate:px=2,categories=things']
    >>> parse_faults(["2:swap=car/bicycle,p=0.5"], ["alice", "bob"])[0].params
    {'pair': 'car/bicycle', 'p': 0.5}
    """
    out: list[FaultSpec] = []
    for spec in specs:
        if spec.strip().lower() == "none":
            continue
        who, sep, rest = spec.partition(":")
        if not sep or not rest:
            raise ConfigError(f"--faults {spec!r} is not ANNOTATOR:FAULT[=VALUE][,KEY=VALUE...]")
        who = who.strip()
        if who == "*":
            targets = list(annotators)
        elif who.isdigit() and 1 <= int(who) <= len(annotators):
            targets = [annotators[int(who) - 1]]
        elif who in annotators:
            targets = [who]
        else:
            raise ConfigError(f"--faults {spec!r}: unknown annotator {who!r}; the annotators are "
                              f"{', '.join(annotators)} (or a 1-based position, or *)")
        head, *pairs = rest.split(",")
        name, has_value, value = head.partition("=")
        name = name.strip()
        names = RULE_FAULTS if name == "rule_faults" else (name,)
        for fault in names:
            if fault not in FAULTS or FAULTS[fault].kind == "effect":
                known = ", ".join([*(k for k, f in FAULTS.items() if f.kind != "effect"), "rule_faults"])
                raise ConfigError(f"--faults {spec!r}: unknown fault {fault!r}; known: {known}")
            ftype = FAULTS[fault]
            params = dict(ftype.params)
            if has_value:
                params[ftype.value] = _coerce(ftype.value, value.strip(), params[ftype.value], where=spec)
            for item in pairs:
                key, eq, val = item.partition("=")
                key = key.strip()
                if not eq or key not in params:
                    raise ConfigError(f"--faults {spec!r}: unknown parameter {key!r} for {fault}; "
                                      f"known: {', '.join(params)}")
                params[key] = _coerce(key, val.strip(), params[key], where=spec)
            _check(fault, params, spec)
            out.extend(FaultSpec(a, fault, dict(params)) for a in targets)
    return out


def _check(fault: str, params: dict, spec: str) -> None:
    for key in ("p", "min_share", "max_share"):
        if key in params and not 0.0 <= float(params[key]) <= 1.0:
            raise ConfigError(f"--faults {spec!r}: {key} must lie in [0, 1], got {params[key]}")
    if "n" in params and (int(params["n"]) != params["n"] or params["n"] < 0):
        raise ConfigError(f"--faults {spec!r}: n must be a non-negative integer, got {params['n']}")
    for key in ("sigma_px", "tolerance_px", "area_px", "spacing_px", "length_px", "gap_px"):
        if key in params and float(params[key]) < 0:
            raise ConfigError(f"--faults {spec!r}: {key} must not be negative, got {params[key]}")
    if fault == "too_few_vertices" and params["vertices"] not in (1, 2, 3):
        raise ConfigError(f"--faults {spec!r}: vertices must be 1, 2 or 3, got {params['vertices']}")
    if "pair" in params:
        parts = str(params["pair"]).split("/")
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
            raise ConfigError(f"--faults {spec!r}: pair must be two different categories as A/B, "
                              f"got {params['pair']!r}")


def default_faults(annotators: list[str]) -> list[FaultSpec]:
    """The faults planted when ``--faults`` is not given.

    Every annotator gets 0.5 px vertex jitter. Three roles are dealt out in order: the first annotator
    moves the road|sidewalk boundary 3 px into the sidewalk, drops occluded flags and confuses bicycle
    and person; the second draws 2 px outside every thing and swaps z-orders; the third misses small
    objects and carries one of each rule fault per image. With fewer than three annotators the last
    one takes the remaining roles.

    Examples
    --------
    >>> sorted({f.fault for f in default_faults(["alice", "bob", "carol"]) if f.annotator == "bob"})
    ['dilate', 'jitter', 'zorder']
    """
    roles = [
        ["shift", "drop_occluded", "swap"],
        ["dilate", "zorder"],
        ["miss_small", *RULE_FAULTS],
    ]
    out = [FaultSpec(a, "jitter", dict(FAULTS["jitter"].params)) for a in annotators]
    for i, role in enumerate(roles):
        who = annotators[min(i, len(annotators) - 1)]
        out.extend(FaultSpec(who, f, dict(FAULTS[f].params)) for f in role)
    return out
