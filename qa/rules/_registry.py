"""The rule registry: one :class:`Rule` record per code, selection by prefix or id, explain text.

A rule is one function plus one record in its family module (``occlusion.py`` OCC, ``layers.py`` LAY,
``vertices.py`` VTX, ``consistency.py`` FMT, ``alignment.py`` ALN). The :func:`rule` decorator builds
the record from the function: its keyword-only arguments and their defaults are the rule's parameters,
and its docstring (with the fixed sections ``## What it checks``, ``## Why it matters``,
``## Example``, ``## How to fix`` and ``## Parameters``) is the text ``qa rules explain`` prints.

A check function must judge each object (or image) from the objects of its own image only, those of
one annotator or of all of them: :func:`qa.rules.check.check` hands it a few images of the batch at a
time, in worker processes, and its findings must not depend on which images share a chunk.

Load-time codes (FMT001-FMT023, raised while reading exports), alignment codes (ALN001-ALN005) and
agreement codes (AGR, raised by ``qa run`` from the comparison) are registered with :func:`document` so
they are listed and explained too; they have no check function. An agreement code may take
parameters, which packs set as they set a rule's.

An id is a family prefix plus three digits (``VTX001``). Ids are never reused: a retired rule stays
listed with status ``removed``. As in ruff, a prefix selects the stable rules it covers; a rule in
``preview`` or ``deprecated`` status is selected only by its exact id, and a ``removed`` rule cannot be
selected at all.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping

Status = Literal["stable", "preview", "deprecated", "removed"]
Level = Literal["object", "image", "batch", "load", "run"]

FAMILIES: dict[str, str] = {
    "OCC": "occlusion",
    "LAY": "layers",
    "VTX": "vertices",
    "FMT": "format",
    "ALN": "alignment",
    "AGR": "agreement",
}
"""Family prefix -> family name, in the order ``qa rules list`` shows them."""

_MODULES = ("qa.rules.occlusion", "qa.rules.layers", "qa.rules.vertices", "qa.rules.consistency",
            "qa.rules.alignment", "qa.rules.agreement")

SECTIONS = ("What it checks", "Why it matters", "Example", "How to fix", "Parameters")
"""The fixed sections of a rule's docstring, in order."""

SEVERITIES = ("error", "warning", "info")
STATUSES = ("stable", "preview", "deprecated", "removed")

_ID = re.compile(r"^(?P<prefix>[A-Z]{3})(?P<number>\d{3})$")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

_REGISTRY: dict[str, "Rule"] = {}


@dataclass(frozen=True)
class Rule:
    """One rule's record.

    Attributes
    ----------
    id : str
        Family prefix plus three digits, for example ``"VTX001"``; never reused.
    name : str
        Kebab-case name, for example ``"sparse-polygon"``.
    title : str
        One line, lower case, no final full stop.
    family : str
        The family name (``"vertices"``); see :data:`FAMILIES`.
    severity : {"error", "warning", "info"}
        Default severity; a pack may change it.
    scope : tuple of str
        Categories the rule checks by default; empty means every category.
    params : Mapping
        Parameter name -> default, keyed by the check function's keyword names.
    status : {"stable", "preview", "deprecated", "removed"}
    since : str
        The version the status dates from.
    level : {"object", "image", "batch", "load", "run"}
        What the check function looks at: one export's objects, one export's images, objects across
        annotators, or nothing (a load-time or alignment code, documented only; ``run`` for a code
        ``qa run`` raises from the comparison of the whole batch). Whatever the level,
        an object is judged against the objects of its own image only ("batch" means every annotator's
        export, over the chunk of images being checked).
    choices : Mapping
        Parameter name -> allowed values, for parameters that take one of a few words.
    func : callable or None
        The check function (None for load-time codes).
    doc : str
        The explain text (the function's docstring, dedented).
    """

    id: str
    name: str
    title: str
    family: str
    severity: str
    scope: tuple[str, ...]
    params: Mapping[str, Any]
    status: str
    since: str
    level: str
    choices: Mapping[str, tuple] = field(default_factory=lambda: MappingProxyType({}))
    func: Callable | None = None
    doc: str = ""

    @property
    def prefix(self) -> str:
        return self.id[:3]

    @property
    def runnable(self) -> bool:
        """Whether the rule has a check function that :func:`qa.rules.check.check` runs."""
        return self.func is not None and self.status != "removed"

    def sections(self) -> dict[str, str]:
        """The docstring's ``## ...`` sections, by heading."""
        return split_sections(self.doc)

    @property
    def why(self) -> str:
        """The "Why it matters" section as one paragraph (reused by reports and docs)."""
        return " ".join(self.sections().get("Why it matters", "").split())

    def explain(self) -> str:
        """The text ``qa rules explain`` prints: heading, family, severity, status, then the docstring."""
        head = [f"# {self.name} ({self.id})", "",
                f"Family: {self.family}", f"Default severity: {self.severity}",
                f"Status: {self.status} since {self.since}"]
        if self.scope:
            head.append(f"Scope: {', '.join(self.scope)}")
        return "\n".join(head) + "\n\n" + self.doc.strip() + "\n"

    def as_dict(self) -> dict:
        """The record as plain data (``qa rules explain --format json``)."""
        return {
            "id": self.id, "name": self.name, "title": self.title, "family": self.family,
            "severity": self.severity, "scope": list(self.scope), "status": self.status,
            "since": self.since, "level": self.level,
            "parameters": [{"name": k, "default": v, **({"choices": list(self.choices[k])}
                                                          if k in self.choices else {})}
                           for k, v in self.params.items()],
            "sections": self.sections(), "doc": self.doc.strip(),
        }


def split_sections(doc: str) -> dict[str, str]:
    """Split a docstring into its ``## Heading`` sections (text before the first heading is dropped).

    Examples
    --------
    >>> split_sections("## What it checks\\nA thing.\\n## Why it matters\\nIt does.")
    {'What it checks': 'A thing.', 'Why it matters': 'It does.'}
    """
    out: dict[str, str] = {}
    current = None
    lines: list[str] = []
    for line in doc.splitlines():
        if line.startswith("## "):
            if current is not None:
                out[current] = "\n".join(lines).strip()
            current, lines = line[3:].strip(), []
        elif current is not None:
            lines.append(line)
    if current is not None:
        out[current] = "\n".join(lines).strip()
    return out


_PARAM_LINE = re.compile(r"^- `(?P<name>[a-z_][a-z0-9_]*)`\s*\((?P<meta>[^)]*)\)")


def documented_params(doc: str) -> dict[str, str]:
    """Parameter name -> default text, as the ``## Parameters`` section lists them.

    Each parameter is one bullet: ``- `name` (type, default <value>[, unit]): what it does``.
    A section that says "None." documents no parameter.

    Examples
    --------
    >>> documented_params("## Parameters\\n- `tolerance_px` (float, default 0.5, pixels): slack.")
    {'tolerance_px': '0.5'}
    """
    section = split_sections(doc).get("Parameters", "")
    out = {}
    for line in section.splitlines():
        m = _PARAM_LINE.match(line.strip())
        if not m:
            continue
        meta = [p.strip() for p in m.group("meta").split(",")]
        default = next((p[len("default "):].strip() for p in meta if p.startswith("default ")), "")
        out[m.group("name")] = default
    return out


def _check_record(rule_id: str, name: str, title: str, severity: str, status: str) -> str:
    m = _ID.match(rule_id)
    if not m or m.group("prefix") not in FAMILIES:
        raise ValueError(f"rule id {rule_id!r} is not a family prefix ({', '.join(FAMILIES)}) plus three digits")
    if rule_id in _REGISTRY:
        raise ValueError(f"rule id {rule_id} is registered twice")
    if not _NAME.match(name):
        raise ValueError(f"rule name {name!r} is not kebab-case")
    if any(r.name == name for r in _REGISTRY.values()):
        raise ValueError(f"rule name {name!r} is used twice")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    if "\n" in title or title.endswith("."):
        raise ValueError(f"title of {rule_id} must be one line without a final full stop")
    return FAMILIES[m.group("prefix")]


def rule(rule_id: str, name: str, title: str, *, severity: str = "warning", level: str = "object",
         scope: tuple[str, ...] = (), status: str = "stable", since: str = "0.1.0",
         choices: dict[str, tuple] | None = None):
    """Register the decorated function as the check of rule ``rule_id``.

    The function takes the check context positionally and its parameters as keyword-only arguments
    with defaults; these become :attr:`Rule.params`.
    """

    def decorate(func: Callable) -> Callable:
        family = _check_record(rule_id, name, title, severity, status)
        params = {}
        for p in inspect.signature(func).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                if p.default is inspect.Parameter.empty:
                    raise ValueError(f"{rule_id}: parameter {p.name!r} needs a default")
                params[p.name] = p.default
        for key, allowed in (choices or {}).items():
            if key not in params or params[key] not in allowed:
                raise ValueError(f"{rule_id}: choices for {key!r} do not cover its default")
        _REGISTRY[rule_id] = Rule(
            id=rule_id, name=name, title=title, family=family, severity=severity, scope=tuple(scope),
            params=MappingProxyType(params), status=status, since=since, level=level,
            choices=MappingProxyType({k: tuple(v) for k, v in (choices or {}).items()}),
            func=func, doc=inspect.cleandoc(func.__doc__ or ""),
        )
        func.rule_id = rule_id
        return func

    return decorate


def document(rule_id: str, name: str, title: str, doc: str, *, severity: str = "error",
             status: str = "stable", since: str = "0.1.0", level: str = "load",
             params: dict | None = None) -> None:
    """Register a code raised outside the rule engine (while loading or aligning, or by ``qa run`` from
    the comparison: ``level="run"``), for listing and explain; ``params`` are its parameters and defaults."""
    family = _check_record(rule_id, name, title, severity, status)
    if level not in ("load", "run"):
        raise ValueError(f"{rule_id}: a documented code is raised at load or run level, not {level!r}")
    _REGISTRY[rule_id] = Rule(
        id=rule_id, name=name, title=title, family=family, severity=severity, scope=(),
        params=MappingProxyType(dict(params or {})), status=status, since=since, level=level, func=None,
        doc=inspect.cleandoc(doc),
    )


def _load_all() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def all_rules() -> list[Rule]:
    """Every registered rule, in family order then by id."""
    _load_all()
    order = {p: k for k, p in enumerate(FAMILIES)}
    return sorted(_REGISTRY.values(), key=lambda r: (order[r.prefix], r.id))


def get(rule_id: str) -> Rule:
    """The rule with this id (case-insensitive) or kebab-case name.

    Raises
    ------
    KeyError
        When no rule has that id or name; the message lists the closest ids.
    """
    _load_all()
    key = rule_id.strip()
    found = _REGISTRY.get(key.upper())
    if found is None:
        found = next((r for r in _REGISTRY.values() if r.name == key.lower()), None)
    if found is None:
        near = [r for r in sorted(_REGISTRY) if r.startswith(key.upper()[:3])][:5]
        hint = f"; known {key.upper()[:3]} rules: {', '.join(near)}" if near else "; see 'qa rules list'"
        raise KeyError(f"no rule {rule_id!r}{hint}")
    return found


def is_selector(text: str) -> bool:
    """Whether ``text`` is a valid selector: ``ALL``, a family prefix, a prefix with digits, or an id."""
    _load_all()
    text = text.upper()
    return text == "ALL" or any(r.startswith(text) for r in _REGISTRY) and text[:3] in FAMILIES


def expand(selector: str) -> list[Rule]:
    """The rules a selector picks: a prefix picks its stable rules, an exact id picks that rule.

    Raises
    ------
    KeyError
        When the selector matches no rule.
    ValueError
        When it names a removed rule exactly.
    """
    _load_all()
    key = selector.strip().upper()
    if key in _REGISTRY:
        found = _REGISTRY[key]
        if found.status == "removed":
            raise ValueError(f"rule {key} was removed in {found.since}")
        return [found]
    if key == "ALL":
        matched = list(_REGISTRY.values())
    else:
        matched = [r for k, r in _REGISTRY.items() if k.startswith(key)]
        if not matched or key[:3] not in FAMILIES:
            raise KeyError(f"{selector!r} is not a rule id or prefix")
    return [r for r in matched if r.status == "stable"]
