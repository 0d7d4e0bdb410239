"""Rule packs: a labelling guideline as one TOML file that selects rules and sets their parameters.

.. code-block:: toml

    name = "city-streets"
    extends = "default"                  # a pack name or a path relative to this file
    [rules]
    select = ["OCC", "LAY", "VTX"]       # prefixes or ids; the nearest `select` is the base
    extend_select = ["FMT101"]
    ignore = ["VTX004"]
    [params.VTX001]
    min_vertices_per_100px = 4.0
    [params.VTX001.categories.person]    # per category, like ruff's per-file-ignores
    min_vertices_per_100px = 8.0
    [severity]                           # ids or prefixes; an id wins over its prefix
    VTX = "info"
    VTX006 = "error"
    [scope]                              # categories a rule checks (all when absent)
    VTX002 = ["person", "car"]
    [gate]                               # thresholds, kept as data for the gate
    mask_iou_mean = { min = 0.85 }

Resolution follows ruff's rule selection: the extended pack is resolved first; in each pack a
``select`` replaces the inherited selection, ``extend_select`` adds to it and ``ignore`` removes from
it, and where a rule matches both a selector and an ignore in one pack the more specific one wins
(``ignore = ["VTX"]`` with ``extend_select = ["VTX004"]`` keeps VTX004; on a tie ``ignore`` wins).
``--select`` and ``--ignore`` on the command line are applied last, as one more level. Parameters,
severities and scopes of the child override the parent's key by key; ``[gate]`` tables merge.

Every unknown key, rule id, prefix, parameter or value raises :class:`~qa.errors.ConfigError` naming the
pack file and the key.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.errors import ConfigError
from qa.rules import _registry

_TOP_KEYS = {"name", "description", "extends", "rules", "params", "severity", "scope", "gate"}
_RULES_KEYS = {"select", "extend_select", "ignore"}


@dataclass(slots=True)
class Pack:
    """A resolved pack: which rules run, with which parameters and severities.

    Attributes
    ----------
    name : str
    path : Path or None
        The pack file (None for the built-in defaults with no file).
    selected : tuple of str
        Selected rule ids (check rules and load-time codes), in registry order.
    params : dict
        Rule id -> {parameter: value} set by the pack (rule defaults fill the rest).
    category_params : dict
        Rule id -> category -> {parameter: value}.
    severity : dict
        Rule id -> severity, where the pack changes the default.
    scope : dict
        Rule id -> categories the rule checks.
    gate : dict
        The ``[gate]`` table as written (read by the gate).
    files : tuple of Path
        Every file read, the most distant ancestor first.
    """

    name: str
    path: Path | None
    selected: tuple[str, ...]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    category_params: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    severity: dict[str, str] = field(default_factory=dict)
    scope: dict[str, tuple[str, ...]] = field(default_factory=dict)
    gate: dict = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    description: str = ""

    def rules(self) -> list[_registry.Rule]:
        """The selected rules that the engine runs (load-time codes excluded)."""
        return [r for r in _registry.all_rules() if r.id in self.selected and r.runnable]

    def severity_of(self, rule_id: str) -> str:
        return self.severity.get(rule_id) or _registry.get(rule_id).severity

    def scope_of(self, rule_id: str) -> tuple[str, ...]:
        return self.scope.get(rule_id, _registry.get(rule_id).scope)

    def params_for(self, rule_id: str, category: str | None = None) -> dict[str, Any]:
        """A rule's parameters: its defaults, then the pack's, then the category's."""
        values = dict(_registry.get(rule_id).params)
        values.update(self.params.get(rule_id, {}))
        if category is not None:
            values.update(self.category_params.get(rule_id, {}).get(category, {}))
        return values

    def as_dict(self) -> dict:
        return {
            "name": self.name, "path": str(self.path) if self.path else None,
            "files": [str(f) for f in self.files], "selected": list(self.selected),
            "params": self.params, "category_params": self.category_params,
            "severity": self.severity, "scope": {k: list(v) for k, v in self.scope.items()},
            "gate": self.gate,
        }


def available() -> list[str]:
    """Names of the built-in packs."""
    from qa._resources import packs_dir

    return sorted(p.stem for p in Path(packs_dir()).glob("*.toml"))


def find(name_or_path, *, relative_to: Path | None = None) -> Path:
    """The file of a pack given by built-in name (``"default"``) or path.

    Raises
    ------
    ConfigError
        When there is no such pack; the message lists the built-in packs.
    """
    from qa._resources import packs_dir

    text = str(name_or_path)
    looks_like_path = text.endswith(".toml") or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(text)
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise ConfigError("no such rule pack file", path=path)
        return path
    path = Path(packs_dir()) / f"{text}.toml"
    if not path.is_file():
        raise ConfigError(f"no built-in rule pack {text!r}; built-in packs: {', '.join(available())}; "
                          "or give a path to a .toml file")
    return path


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read rule pack: {exc.strerror}", path=path) from None


def _string_list(value, path: Path, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"must be a list of strings, got {value!r}", path=path, where=key)
    return value


def _expand(selector: str, path: Path | None, key: str) -> set[str]:
    try:
        return {r.id for r in _registry.expand(selector)}
    except KeyError:
        raise ConfigError(f"unknown rule id or prefix {selector!r}; see 'qa rules list'",
                          path=path, where=key) from None
    except ValueError as exc:
        raise ConfigError(str(exc), path=path, where=key) from None


def _specificity(selector: str) -> int:
    return 0 if selector.upper() == "ALL" else len(selector)


def apply_selection(current: set[str], *, select=None, extend_select=None, ignore=None,
                    path: Path | None = None, keys: dict[str, str] | None = None) -> set[str]:
    """One level of ruff-style selection over the set of selected ids.

    Examples
    --------
    >>> sorted(apply_selection(set(), select=["VTX"], ignore=["VTX00"], extend_select=["VTX004"]))
    ['VTX004']
    """
    keys = keys or {k: f"rules.{k}" for k in _RULES_KEYS}
    positives = [(s, _expand(s, path, keys["select"])) for s in select or []]
    positives += [(s, _expand(s, path, keys["extend_select"])) for s in extend_select or []]
    negatives = [(s, _expand(s, path, keys["ignore"])) for s in ignore or []]
    base = set() if select is not None else set(current)
    out = set()
    for r in _registry.all_rules():
        pos = max((_specificity(s) for s, ids in positives if r.id in ids), default=-1)
        neg = max((_specificity(s) for s, ids in negatives if r.id in ids), default=-1)
        if pos >= 0 and pos > neg:
            out.add(r.id)
        elif neg >= 0:
            continue
        elif r.id in base:
            out.add(r.id)
    return out


def _check_value(rule: _registry.Rule, key: str, value, path: Path, where: str) -> Any:
    if key not in rule.params:
        known = ", ".join(rule.params) or "none"
        raise ConfigError(f"{rule.id} has no parameter {key!r} (parameters: {known})", path=path, where=where)
    default = rule.params[key]
    ok = (isinstance(value, bool) if isinstance(default, bool)
          else isinstance(value, int) and not isinstance(value, bool) if isinstance(default, int)
          else isinstance(value, (int, float)) and not isinstance(value, bool) if isinstance(default, float)
          else isinstance(value, str) if isinstance(default, str)
          else True)
    if not ok:
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
            type(default), type(default).__name__)
        raise ConfigError(f"{rule.id} parameter {key!r} takes {kind}, got {value!r}", path=path, where=where)
    if key in rule.choices and value not in rule.choices[key]:
        raise ConfigError(f"{rule.id} parameter {key!r} must be one of "
                          f"{', '.join(map(repr, rule.choices[key]))}, got {value!r}", path=path, where=where)
    return float(value) if isinstance(default, float) else value


def _runnable(rule_id: str, path: Path, where: str) -> _registry.Rule:
    try:
        found = _registry.get(rule_id)
    except KeyError:
        raise ConfigError(f"unknown rule id {rule_id!r}; see 'qa rules list'", path=path, where=where) from None
    if found.id != rule_id.upper() or not _registry._ID.match(rule_id):
        raise ConfigError(f"use the rule id {found.id!r}, not {rule_id!r}", path=path, where=where)
    return found


def _read_level(path: Path, doc: dict, pack: Pack) -> None:
    """Apply one pack file on top of ``pack`` (its parent, already resolved)."""
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_TOP_KEYS))}",
                          path=path, where=unknown[0])
    rules = doc.get("rules", {})
    if not isinstance(rules, dict):
        raise ConfigError("must be a table", path=path, where="rules")
    bad = sorted(set(rules) - _RULES_KEYS)
    if bad:
        raise ConfigError(f"unknown key {bad[0]!r}; known keys: {', '.join(sorted(_RULES_KEYS))}",
                          path=path, where=f"rules.{bad[0]}")
    lists = {k: _string_list(rules[k], path, f"rules.{k}") for k in _RULES_KEYS if k in rules}
    pack.selected = tuple(sorted(apply_selection(set(pack.selected), path=path, **lists)))

    params = doc.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError("must be a table", path=path, where="params")
    for rule_id, table in params.items():
        where = f"params.{rule_id}"
        found = _runnable(rule_id, path, where)
        if not isinstance(table, dict):
            raise ConfigError("must be a table", path=path, where=where)
        for key, value in table.items():
            if key == "categories":
                if found.level not in ("object", "batch"):
                    what = "checks whole images" if found.level == "image" else "is not a rule check"
                    raise ConfigError(f"{found.id} {what} and takes no per-category parameters",
                                      path=path, where=f"{where}.categories")
                if not isinstance(value, dict):
                    raise ConfigError("must be a table of categories", path=path, where=f"{where}.categories")
                for category, values in value.items():
                    cwhere = f"{where}.categories.{category}"
                    if not isinstance(values, dict):
                        raise ConfigError("must be a table of parameters", path=path, where=cwhere)
                    target = pack.category_params.setdefault(found.id, {}).setdefault(category, {})
                    for k, v in values.items():
                        target[k] = _check_value(found, k, v, path, f"{cwhere}.{k}")
                continue
            pack.params.setdefault(found.id, {})[key] = _check_value(found, key, value, path, f"{where}.{key}")

    severity = doc.get("severity", {})
    if not isinstance(severity, dict):
        raise ConfigError("must be a table", path=path, where="severity")
    for selector in sorted(severity, key=_specificity):
        value = severity[selector]
        if value not in _registry.SEVERITIES:
            raise ConfigError(f"severity must be one of {', '.join(_registry.SEVERITIES)}, got {value!r}",
                              path=path, where=f"severity.{selector}")
        for rule_id in _expand(selector, path, f"severity.{selector}"):
            pack.severity[rule_id] = value

    scope = doc.get("scope", {})
    if not isinstance(scope, dict):
        raise ConfigError("must be a table", path=path, where="scope")
    for rule_id, categories in scope.items():
        found = _runnable(rule_id, path, f"scope.{rule_id}")
        if found.level in ("image", "run"):
            what = "checks whole images" if found.level == "image" else "judges annotator pairs over the batch"
            raise ConfigError(f"{found.id} {what} and takes no category scope",
                              path=path, where=f"scope.{rule_id}")
        pack.scope[found.id] = tuple(_string_list(categories, path, f"scope.{rule_id}"))

    gate = doc.get("gate", {})
    if not isinstance(gate, dict):
        raise ConfigError("must be a table", path=path, where="gate")
    pack.gate.update(gate)
    if isinstance(doc.get("name"), str):
        pack.name = doc["name"]
    elif "name" in doc:
        raise ConfigError("must be a string", path=path, where="name")
    if isinstance(doc.get("description"), str):
        pack.description = doc["description"]


def _base() -> Pack:
    """The state before any pack: every stable rule selected, with its defaults."""
    selected = tuple(sorted(r.id for r in _registry.all_rules() if r.status == "stable"))
    return Pack(name="", path=None, selected=selected)


def read(name_or_path="default", *, _seen: tuple[Path, ...] = (), relative_to: Path | None = None) -> Pack:
    """Read and resolve a pack and the packs it extends.

    Parameters
    ----------
    name_or_path : str or os.PathLike, default "default"
        A built-in pack name or a path to a TOML file.

    Returns
    -------
    Pack

    Raises
    ------
    ConfigError
        Unknown key, rule, prefix, parameter or value, a missing extended pack, or a cycle; the
        message names the file and the key.

    Examples
    --------
    >>> pack = read("default")
    >>> "VTX001" in pack.selected
    True
    """
    path = find(name_or_path, relative_to=relative_to).resolve()
    if path in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path))
        raise ConfigError(f"packs extend each other in a cycle ({chain})", path=_seen[-1], where="extends")
    doc = _read_toml(path)
    parent_name = doc.get("extends")
    if parent_name is None:
        pack = _base()
    else:
        if not isinstance(parent_name, str):
            raise ConfigError("must be a pack name or a relative path", path=path, where="extends")
        try:
            parent = find(parent_name, relative_to=path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} ({parent_name!r})", path=path, where="extends") from None
        pack = read(parent, _seen=(*_seen, path))
    pack.path = path
    pack.name = path.stem
    pack.description = ""
    _read_level(path, doc, pack)
    pack.files = (*pack.files, path)
    return pack


def override(pack: Pack, *, select=None, extend_select=None, ignore=None) -> Pack:
    """Apply ``--select``/``--extend-select``/``--ignore`` from the command line, last.

    Raises
    ------
    ConfigError
        When a selector is not a rule id or prefix (the key names the option).
    """
    if not (select or extend_select or ignore):
        return pack
    selected = apply_selection(set(pack.selected), select=select or None, extend_select=extend_select,
                               ignore=ignore, path=None,
                               keys={"select": "--select", "extend_select": "--extend-select", "ignore": "--ignore"})
    return Pack(name=pack.name, path=pack.path, selected=tuple(sorted(selected)), params=pack.params,
                category_params=pack.category_params, severity=pack.severity, scope=pack.scope,
                gate=pack.gate, files=pack.files, description=pack.description)
