"""The release gate: a pack's ``[gate]`` thresholds and a run's scores to a :class:`Verdict`.

The gate is pure: it reads the long scores table (``scope, key, metric, value, n``; see
docs/gate.md), the run's findings, and optionally a baseline run's scores, and returns a verdict with
one result per check. Writers turn the verdict into JSON (shaped like a Great Expectations validation
result) and JUnit XML (one testcase per check). Nothing here touches the store or sets an exit code.

A ``[gate]`` table:

.. code-block:: toml

    [gate]
    mask_iou_mean = { min = 0.85 }                          # the batch figure
    boundary_f_2px_mean = { min = 0.70, per = "category" }  # every category's figure
    pq = [{ min = 0.60 }, { min = 0.50, per = "annotator_pair" }]
    missing_share = { max = 0.05, per = "annotator" }
    violations = { error = 0, warning = 20 }                # most findings allowed per severity

    [gate.category.person]            # this key's bound replaces the per-category one
    boundary_f_2px_mean = { min = 0.60 }

    [gate.regression]                 # used with a baseline run
    max_drop = 0.02                   # every min-bounded check: fail on a larger drop
    pq = { max_drop = 0.05, per = "category" }
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from qa import metric_registry
from qa._text import visible
from qa.errors import ConfigError

VERDICT_SCHEMA = 1
"""Version of the verdict document (``"schema"`` in the JSON)."""

SCOPES = tuple(metric_registry.SCOPES)
"""The scopes of the scores table (:data:`qa.metric_registry.SCOPES`); ``per = ...`` names one of them."""

SEVERITIES = ("error", "warning", "info")

_CHECK_OPTIONS = {"min", "max", "per", "key", "missing"}
_REGRESSION_OPTIONS = {"max_drop", "max_rise", "per", "key", "missing"}
_EPS = 1e-12  # float slack so 0.85 >= 0.85 after arithmetic


# --- configuration ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Threshold:
    """One bound on one figure: ``metric`` at ``scope`` (every key, or only ``key``) within min/max.

    ``missing`` says what to do when the figure is absent or undefined (NaN): ``"fail"`` (default, a
    gate never passes on a figure it could not see) or ``"skip"``.
    """

    metric: str
    scope: str = "batch"
    key: str | None = None
    min: float | None = None
    max: float | None = None
    missing: str = "fail"


@dataclass(frozen=True, slots=True)
class Regression:
    """A limit on how far a figure may move from a baseline run's: ``max_drop`` down, ``max_rise`` up."""

    metric: str
    scope: str = "batch"
    key: str | None = None
    max_drop: float | None = None
    max_rise: float | None = None
    missing: str = "fail"


@dataclass(slots=True)
class GateConfig:
    """The checks of one pack's ``[gate]`` table."""

    thresholds: list[Threshold] = field(default_factory=list)
    regressions: list[Regression] = field(default_factory=list)
    max_drop: float | None = None
    max_rise: float | None = None
    pack: str = ""
    allow_empty: bool = False
    """Whether a gate that evaluates no check passes (``allow_empty = true`` in ``[gate]``); by default it fails."""


def _metric(metric: str, scope: str, where: str) -> None:
    """Raise a ConfigError unless the metric registry knows ``metric`` and it is computed at ``scope``."""
    found = metric_registry.find(metric)
    if found is None:
        close = metric_registry.suggest(metric, scope=scope) or metric_registry.suggest(metric)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"{where}: unknown metric {metric!r}{hint} (every metric: docs/metrics.md)")
    scopes = found.metric.scopes
    if scope not in scopes:
        if not scopes:
            stored = ", ".join(t.split(".")[0] for t in found.metric.tables) or "another table"
            raise ConfigError(f"{where}: {metric} is not a figure of the scores table (it is a column of "
                              f"{stored}); the gate checks scores-table figures (docs/metrics.md)")
        raise ConfigError(f"{where}: {metric} is not computed per {scope}; it is computed per "
                          f"{', '.join(scopes)}")


def _scope(value, where: str) -> str:
    aliases = {"pair": "annotator_pair", "pairs": "annotator_pair", "global": "batch"}
    scope = aliases.get(value, value)
    if scope not in SCOPES:
        raise ConfigError(f"{where}: per = {value!r} is not a scope; expected one of {', '.join(SCOPES)}")
    return scope


def _number(value, where: str, name: str) -> float:
    """A bound from a pack: a finite number (``-inf``, ``inf`` and ``nan`` are TOML floats, never bounds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {name} = {value!r} is not a number")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {name} = {value!r} is not a finite number")
    return float(value)


def finite_bound(value, option: str) -> float:
    """A bound given on the command line (``--max-drop``): a finite number, else a ConfigError."""
    return _number(value, option, option.lstrip("-").replace("-", "_"))


def _norm_key(scope: str, key) -> str:
    key = str(key)
    if scope in ("annotator_pair", "category_pair") and "|" in key:
        key = "|".join(sorted(key.split("|")))
    return key


def _specs(value, where: str) -> list[dict]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value
    raise ConfigError(f"{where}: expected a table like {{ min = 0.8 }} or a list of them, got {value!r}")


def _missing(spec: dict, where: str) -> str:
    missing = spec.get("missing", "fail")
    if missing not in ("fail", "skip"):
        raise ConfigError(f"{where}: missing = {missing!r}; expected 'fail' or 'skip'")
    return missing


def _threshold(metric: str, spec: dict, where: str, *, scope=None, key=None) -> list[Threshold]:
    unknown = set(spec) - _CHECK_OPTIONS
    if unknown:
        raise ConfigError(f"{where}: unknown option {sorted(unknown)[0]!r}; "
                          f"expected {', '.join(sorted(_CHECK_OPTIONS))}")
    if "min" not in spec and "max" not in spec:
        raise ConfigError(f"{where}: give min, max or both")
    if scope is None:
        scope = _scope(spec.get("per", "batch"), where)
        key = spec.get("key")
    elif "per" in spec or "key" in spec:
        raise ConfigError(f"{where}: per and key come from the table name here; remove them")
    if key is not None:
        if scope == "batch":
            raise ConfigError(f"{where}: key = {key!r} needs per = <scope>")
        key = _norm_key(scope, key)
    _metric(metric, scope, where)
    lo = _number(spec["min"], where, "min") if "min" in spec else None
    hi = _number(spec["max"], where, "max") if "max" in spec else None
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"{where}: min {lo:g} is above max {hi:g}")
    return [Threshold(metric, scope, key, lo, hi, _missing(spec, where))]


def _violations(spec, where: str, *, scope="batch", key=None) -> list[Threshold]:
    """``violations = { error = 0, warning = 20, per = "annotator" }``: most findings per severity."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a table like {{ error = 0, warning = 20 }}")
    spec = dict(spec)
    if "per" in spec:
        scope = _scope(spec.pop("per"), where)
    missing = _missing(spec, where)
    spec.pop("missing", None)
    unknown = set(spec) - set(SEVERITIES) - {"total"}
    if unknown:
        raise ConfigError(f"{where}: unknown severity {sorted(unknown)[0]!r}; expected error, warning, info, total")
    out = []
    for severity, bound in spec.items():
        metric = "violations" if severity == "total" else f"violations_{severity}"
        out.append(Threshold(metric, scope, key, None, _number(bound, where, severity), missing))
    return out


def _regressions(table: dict, where: str) -> tuple[list[Regression], float | None, float | None]:
    table = dict(table)
    default_drop = _number(table.pop("max_drop"), where, "max_drop") if "max_drop" in table else None
    default_rise = _number(table.pop("max_rise"), where, "max_rise") if "max_rise" in table else None
    out = []
    for metric, value in table.items():
        for spec in _specs(value, f"{where}.{metric}"):
            here = f"{where}.{metric}"
            unknown = set(spec) - _REGRESSION_OPTIONS
            if unknown:
                raise ConfigError(f"{here}: unknown option {sorted(unknown)[0]!r}; "
                                  f"expected {', '.join(sorted(_REGRESSION_OPTIONS))}")
            if "max_drop" not in spec and "max_rise" not in spec:
                raise ConfigError(f"{here}: give max_drop, max_rise or both")
            scope = _scope(spec.get("per", "batch"), here)
            _metric(metric, scope, here)
            key = spec.get("key")
            out.append(Regression(
                metric, scope, None if key is None else _norm_key(scope, key),
                _number(spec["max_drop"], here, "max_drop") if "max_drop" in spec else None,
                _number(spec["max_rise"], here, "max_rise") if "max_rise" in spec else None,
                _missing(spec, here)))
    return out, default_drop, default_rise


def parse_gate(table: dict, *, source: str = "") -> GateConfig:
    """Read a pack's ``[gate]`` table into a :class:`GateConfig`.

    Parameters
    ----------
    table : dict
        The ``[gate]`` table as parsed from TOML.
    source : str, default ""
        The pack file, named in error messages.

    Returns
    -------
    GateConfig

    Raises
    ------
    ConfigError
        An unknown option, scope or severity, or a bound that is not a number; the message names the
        pack file and the key.

    Examples
    --------
    >>> cfg = parse_gate({"mask_iou_mean": {"min": 0.85},
    ...                   "pq": {"min": 0.5, "per": "category"},
    ...                   "category": {"person": {"pq": {"min": 0.4}}}})
    >>> [(t.metric, t.scope, t.key, t.min) for t in cfg.thresholds]
    [('mask_iou_mean', 'batch', None, 0.85), ('pq', 'category', None, 0.5), ('pq', 'category', 'person', 0.4)]
    """
    prefix = f"{source}: [gate]" if source else "[gate]"
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix}: expected a table")
    cfg = GateConfig(pack=source)
    for name, value in table.items():
        where = f"{prefix} {name}"
        if name == "allow_empty":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true or false, got {value!r}")
            cfg.allow_empty = value
        elif name == "regression":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a table")
            cfg.regressions, cfg.max_drop, cfg.max_rise = _regressions(value, f"{prefix} regression")
        elif name in SCOPES and name != "batch":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(f"{where}: expected [gate.{name}.<key>] tables of thresholds")
            for key, checks in value.items():
                for metric, spec in checks.items():
                    here = f"{prefix} {name}.{key}.{metric}"
                    if metric == "violations":
                        cfg.thresholds += _violations(spec, here, scope=name, key=_norm_key(name, key))
                        continue
                    for one in _specs(spec, here):
                        cfg.thresholds += _threshold(metric, one, here, scope=name, key=_norm_key(name, key))
        elif name == "violations":
            cfg.thresholds += _violations(value, where)
        else:
            for one in _specs(value, where):
                cfg.thresholds += _threshold(name, one, where)
    return cfg


def load_gate(pack) -> GateConfig:
    """Read the ``[gate]`` table of a pack, resolved as the rules stage resolves packs.

    Parameters
    ----------
    pack : str or os.PathLike
        A pack file (``.toml``) or the name of a built-in pack.

    Returns
    -------
    GateConfig
        ``pack`` is set to the pack file's path.

    Raises
    ------
    ConfigError
        The pack cannot be found or read, is invalid (see :func:`qa.rules.packs.read`), has no
        ``[gate]`` table, or its table is invalid.

    Notes
    -----
    ``extends`` merges ``[gate]`` tables key by key (:func:`qa.rules.packs.read`): the extending pack's
    entry for a metric, or its whole ``[gate.regression]`` or ``[gate.<scope>]`` table, replaces the
    extended pack's.
    """
    from qa.rules.packs import read

    resolved = read(pack)
    source = str(resolved.path) if resolved.path is not None else str(pack)
    if not resolved.gate:
        raise ConfigError("the pack has no [gate] table; add thresholds (see docs/gate.md)", path=source)
    return parse_gate(resolved.gate, source=source)


# --- the verdict --------------------------------------------------------------------------------------

@dataclass(slots=True)
class CheckResult:
    """The outcome of one check on one figure."""

    metric: str
    scope: str
    key: str
    op: str
    bound: float
    observed: float | None
    passed: bool
    n: int | None = None
    baseline: float | None = None
    message: str = ""

    @property
    def name(self) -> str:
        """``metric[scope=key] >= bound``, the check's readable name (JUnit testcase name)."""
        where = "" if self.scope == "batch" else f"[{self.scope}={self.key}]"
        sign = {"min": ">=", "max": "<=", "max_drop": "drop <=", "max_rise": "rise <="}[self.op]
        return f"{self.metric}{where} {sign} {self.bound:g}"

    def to_dict(self) -> dict:
        return {"check": self.name, "metric": self.metric, "scope": self.scope, "key": self.key,
                "op": self.op, "bound": self.bound, "observed": _clean(self.observed), "n": self.n,
                "baseline": _clean(self.baseline), "passed": self.passed, "message": self.message}


@dataclass(slots=True)
class Verdict:
    """Whether a run passed its gate, with every check's result.

    ``meta`` holds the run id, the inputs' fingerprints, the tool version, the pack and the baseline
    run; ``skipped`` lists checks left out because their figure was absent and they allow it.
    """

    results: list[CheckResult]
    meta: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    allow_empty: bool = False
    """Whether the verdict passes when no check was evaluated (the pack's ``allow_empty``)."""

    @property
    def empty(self) -> bool:
        """True when no check was evaluated and the pack does not allow that: the gate fails."""
        return not self.results and not self.allow_empty

    @property
    def success(self) -> bool:
        """Every check passed, and at least one was evaluated (unless the pack allows none)."""
        return not self.empty and all(r.passed for r in self.results)

    @property
    def statistics(self) -> dict:
        evaluated = len(self.results)
        passed = sum(r.passed for r in self.results)
        return {"evaluated": evaluated, "passed": passed, "failed": evaluated - passed,
                "percent": round(100.0 * passed / evaluated, 2) if evaluated else None}

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def summary_line(self) -> str:
        """``gate FAILED (2 of 9 checks)``, ``gate passed (9 checks)``, or ``gate FAILED (no check
        evaluated ...)`` when nothing was checked and the pack does not allow that."""
        stats = self.statistics
        if self.empty:
            return ("gate FAILED (no check evaluated; a gate that checks nothing fails unless its pack sets "
                    "allow_empty = true in [gate])")
        if self.success:
            return f"gate passed ({stats['evaluated']} check{'s' * (stats['evaluated'] != 1)})"
        return f"gate FAILED ({stats['failed']} of {stats['evaluated']} checks)"

    def to_dict(self) -> dict:
        meta = dict(self.meta)
        if self.skipped:
            meta["skipped"] = list(self.skipped)
        if self.allow_empty:
            meta["allow_empty"] = True
        return {"schema": VERDICT_SCHEMA, "success": self.success, "statistics": self.statistics,
                "results": [r.to_dict() for r in self.results], "meta": meta}

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        """Rebuild a verdict from :meth:`to_dict` output (as the store keeps it)."""
        results = [CheckResult(metric=r["metric"], scope=r["scope"], key=r["key"], op=r["op"],
                               bound=r["bound"], observed=r["observed"], passed=r["passed"], n=r.get("n"),
                               baseline=r.get("baseline"), message=r.get("message", ""))
                   for r in data.get("results", [])]
        meta = dict(data.get("meta", {}))
        skipped = meta.pop("skipped", [])
        allow_empty = bool(meta.pop("allow_empty", False))
        return cls(results=results, meta=meta, skipped=skipped, allow_empty=allow_empty)


def _clean(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _isnan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _label(metric: str, scope: str, key: str) -> str:
    return metric if scope == "batch" else f"{metric}[{scope}={key}]"


def _fmt(value) -> str:
    return "undefined" if _isnan(value) else f"{value:.4g}"


def _index(scores) -> dict[tuple[str, str, str], tuple[float, int]]:
    """``{(metric, scope, key): (value, n)}`` from a scores DataFrame or an iterable of row dicts."""
    if scores is None:
        return {}
    if hasattr(scores, "to_dict"):
        rows = scores.to_dict("records")
    else:
        rows = list(scores)
    out = {}
    for row in rows:
        value = row.get("value")
        value = float("nan") if value is None else float(value)
        n = row.get("n")
        n = None if n is None or (isinstance(n, float) and math.isnan(n)) else int(n)
        out[(str(row["metric"]), str(row["scope"]), "" if row.get("key") is None else str(row["key"]))] = (value, n)
    return out


def _finding_rows(findings) -> list[dict]:
    if findings is None:
        return []
    if hasattr(findings, "to_dict"):
        return findings.to_dict("records")
    return [{"severity": f.severity, "annotator": f.annotator} if not isinstance(f, dict) else f
            for f in findings]


def violation_counts(findings, annotators: Iterable[str] = ()) -> dict[tuple[str, str, str], tuple[float, int]]:
    """Findings counted per severity, as score rows ``violations_<severity>`` and ``violations``.

    Parameters
    ----------
    findings : list of Finding, DataFrame or list of dict
        Anything with ``severity`` and ``annotator``.
    annotators : iterable of str, optional
        Annotators to report (with zero counts) even when they have no findings.

    Returns
    -------
    dict
        ``{(metric, scope, key): (count, count)}`` for scope ``batch`` (key ``""``) and ``annotator``.

    Examples
    --------
    >>> from qa.model import Finding
    >>> counts = violation_counts([Finding("FMT001", "error", "bad", annotator="bob")], ["alice", "bob"])
    >>> counts[("violations_error", "batch", "")], counts[("violations_error", "annotator", "alice")]
    ((1.0, 1), (0.0, 0))
    """
    from qa.rules.violations import ChainedFindings, PackedFindings, counts_by

    counts: dict = {}  # (severity, annotator) -> findings
    if isinstance(findings, (PackedFindings, ChainedFindings)):  # counted without reading the findings
        counts = counts_by(findings, "severity", "annotator")
    else:
        for r in _finding_rows(findings):
            key = (r.get("severity"), r.get("annotator"))
            counts[key] = counts.get(key, 0) + 1
    names = sorted(set(annotators) | {a for _s, a in counts if a})
    out = {}
    for scope, keys in (("batch", [""]), ("annotator", names)):
        for key in keys:
            mine: dict = {}
            for (s, a), n in counts.items():
                if scope == "batch" or a == key:
                    mine[s] = mine.get(s, 0) + n
            total = sum(mine.values())
            out[("violations", scope, key)] = (float(total), total)
            for severity in SEVERITIES:
                count = mine.get(severity, 0)
                out[(f"violations_{severity}", scope, key)] = (float(count), count)
    return out


def _check_bound(t: Threshold, op: str, bound: float, key: str, value: float, n) -> CheckResult:
    if _isnan(value):
        return CheckResult(t.metric, t.scope, key, op, bound, None, False, n,
                           message="undefined (NaN) in this run")
    passed = value >= bound - _EPS if op == "min" else value <= bound + _EPS
    sign = (">=" if passed else "<") if op == "min" else ("<=" if passed else ">")
    return CheckResult(t.metric, t.scope, key, op, bound, value, passed, n,
                       message=f"{_fmt(value)} {sign} {bound:g}")


def _threshold_results(t: Threshold, index, specific: set, verdict: Verdict) -> list[CheckResult]:
    if t.key is not None or t.scope == "batch":
        keys = ["" if t.scope == "batch" else t.key]
    else:
        keys = sorted(k for (m, s, k) in index if m == t.metric and s == t.scope
                      and (t.metric, t.scope, k) not in specific)
    ops = [(op, b) for op, b in (("min", t.min), ("max", t.max)) if b is not None]
    results = []
    if not keys:
        label = f"{t.metric} per {t.scope}"
        if t.missing == "skip":
            verdict.skipped.append(f"{label}: not computed in this run")
            return []
        return [CheckResult(t.metric, t.scope, "*", op, bound, None, False, None,
                            message=f"no {t.scope} figures for {t.metric} in this run") for op, bound in ops]
    for key in keys:
        found = index.get((t.metric, t.scope, key))
        if found is None or _isnan(found[0]):
            if t.missing == "skip":
                verdict.skipped.append(f"{_label(t.metric, t.scope, key)}: not computed or undefined")
                continue
            if found is None:
                results += [CheckResult(t.metric, t.scope, key, op, bound, None, False, None,
                                        message="not computed in this run") for op, bound in ops]
                continue
        value, n = found
        results += [_check_bound(t, op, bound, key, value, n) for op, bound in ops]
    return results


def _regression_results(r: Regression, index, base_index, verdict: Verdict) -> list[CheckResult]:
    if r.key is not None or r.scope == "batch":
        keys = ["" if r.scope == "batch" else r.key]
    else:
        keys = sorted(k for (m, s, k) in base_index if m == r.metric and s == r.scope)
    ops = [(op, b) for op, b in (("max_drop", r.max_drop), ("max_rise", r.max_rise)) if b is not None]
    results = []
    for key in keys:
        base = base_index.get((r.metric, r.scope, key))
        if base is None or _isnan(base[0]):
            verdict.skipped.append(f"{_label(r.metric, r.scope, key)}: no baseline figure to compare with")
            continue
        cur = index.get((r.metric, r.scope, key))
        for op, bound in ops:
            if cur is None or _isnan(cur[0]):
                if r.missing == "skip":
                    verdict.skipped.append(f"{_label(r.metric, r.scope, key)}: not computed or undefined")
                    continue
                results.append(CheckResult(r.metric, r.scope, key, op, bound, None, False, None, base[0],
                                           "not computed or undefined in this run"))
                continue
            change = base[0] - cur[0] if op == "max_drop" else cur[0] - base[0]
            passed = change <= bound + _EPS
            word = "dropped" if op == "max_drop" else "rose"
            results.append(CheckResult(
                r.metric, r.scope, key, op, bound, cur[0], passed, cur[1], base[0],
                f"{word} {max(change, 0.0):.4g} from {_fmt(base[0])} to {_fmt(cur[0])} (allowed {bound:g})"))
    return results


def evaluate(scores, config: GateConfig, *, findings=None, annotators: Iterable[str] = (), baseline=None,
             baseline_findings=None, meta: dict | None = None) -> Verdict:
    """Check a run's figures against a gate configuration.

    Parameters
    ----------
    scores : DataFrame or iterable of dict, optional
        The run's long scores table (columns ``scope, key, metric, value, n``). None when the run
        computed none.
    config : GateConfig
        The thresholds, from :func:`load_gate` or :func:`parse_gate`.
    findings : list of Finding, DataFrame or list of dict, optional
        The run's findings; ``violations_<severity>`` figures are counted from them where ``scores``
        has none.
    annotators : iterable of str, optional
        The run's annotators (so an annotator without findings counts 0 violations).
    baseline : DataFrame or iterable of dict, optional
        The baseline run's scores, for the regression checks. Without it regression checks are not
        evaluated.
    baseline_findings : list of Finding, DataFrame or list of dict, optional
        The baseline run's findings, so violation counts can regress too.
    meta : dict, optional
        Copied into the verdict's ``meta`` (run id, fingerprints, tool version, ...).

    Returns
    -------
    Verdict
        One result per bound and key, thresholds first, then regression checks.

    Notes
    -----
    A figure that is absent or NaN fails its check unless the check says ``missing = "skip"``: a
    gate never passes on a figure it could not see. A per-scope check (``per = "category"``) covers
    every key the run has, except keys that have a check of their own for the same metric. Bounds are
    inclusive. A regression check compares each key the baseline has; ``max_drop`` fails when
    ``baseline - observed > max_drop``. Without explicit regression entries, ``[gate.regression]
    max_drop`` applies to every min-bounded threshold (and ``max_rise`` to every max-bounded one).

    Examples
    --------
    >>> cfg = parse_gate({"mask_iou_mean": {"min": 0.85}})
    >>> v = evaluate([{"scope": "batch", "key": "", "metric": "mask_iou_mean", "value": 0.8, "n": 10}], cfg)
    >>> v.success, v.results[0].message
    (False, '0.8 < 0.85')
    """
    verdict = Verdict(results=[], meta=dict(meta or {}), allow_empty=config.allow_empty)
    verdict.meta.setdefault("pack", config.pack)
    index = _index(scores)
    for k, v in violation_counts(findings, annotators).items():
        index.setdefault(k, v)
    specific = {(t.metric, t.scope, t.key) for t in config.thresholds if t.key is not None}
    for t in config.thresholds:
        verdict.results += _threshold_results(t, index, specific, verdict)
    if baseline is not None:
        base_index = _index(baseline)
        for k, v in violation_counts(baseline_findings, annotators).items():
            base_index.setdefault(k, v)
        regressions = list(config.regressions)
        if not regressions:
            for t in config.thresholds:
                drop = config.max_drop if t.min is not None else None
                rise = config.max_rise if t.max is not None else None
                if drop is not None or rise is not None:
                    regressions.append(Regression(t.metric, t.scope, t.key, drop, rise, t.missing))
        if not regressions:
            raise ConfigError(f"{config.pack or '[gate]'}: a baseline was given but the pack has no "
                              f"[gate.regression] checks; add one or pass --max-drop")
        for r in regressions:
            verdict.results += _regression_results(r, index, base_index, verdict)
    return verdict


def run_findings(run):
    """Every finding of a run: the batch's (load, alignment), the analyses', then the rule violations.

    A list; or, when the violations are a :class:`qa.rules.violations.PackedFindings` (a run's pass), a
    :class:`qa.rules.violations.ChainedFindings` that reads them where they are kept.
    """
    from qa.rules.violations import ChainedFindings, PackedFindings

    seen: set[int] = set()
    out, packed = [], []
    for source in (run.batch.findings, getattr(run, "findings", None), getattr(run, "violations", None)):
        if isinstance(source, PackedFindings):  # a new Finding at each read: none is one of the lists'
            packed.append(source)
            continue
        for f in source or ():
            if id(f) not in seen:
                seen.add(id(f))
                out.append(f)
    return ChainedFindings([out, *packed]) if packed else out


def run_scores(run):
    """A run's long scores table: ``run.scores``, else ``run.comparison.scores``, else None."""
    scores = getattr(run, "scores", None)
    comparison = getattr(run, "comparison", None)
    if scores is None and comparison is not None:
        scores = getattr(comparison, "scores", None)
    return scores


def verdict_for(run, config: GateConfig, *, baseline=None, baseline_findings=None,
                baseline_run_id: str | None = None) -> Verdict:
    """Gate a finished :class:`~qa.pipeline.Run`: :func:`evaluate` on its scores and findings, with its meta.

    ``meta`` gets the run id, each annotator's input fingerprint, the tool version, the pack and the
    baseline run id.
    """
    from qa import __version__

    meta = {"run_id": run.run_id,
            "fingerprints": {i["annotator"]: i["sha256"] for i in (getattr(run, "inputs", None) or [])},
            "tool_version": __version__, "pack": config.pack, "baseline_run_id": baseline_run_id}
    return evaluate(run_scores(run), config, findings=run_findings(run), annotators=run.batch.annotators,
                    baseline=baseline, baseline_findings=baseline_findings, meta=meta)


# --- writers ------------------------------------------------------------------------------------------

def to_json(verdict: Verdict, *, indent: int | None = 2) -> str:
    """The verdict as JSON text (``"schema": 1``; NaN written as null).

    Examples
    --------
    >>> v = evaluate([], parse_gate({"pq": {"min": 0.5, "missing": "skip"}}))
    >>> print(to_json(v, indent=None))
    {"schema": 1, "success": false, "statistics": {"evaluated": 0, "passed": 0, "failed": 0, "percent": null}, "results": [], "meta": {"pack": "", "skipped": ["pq: not computed or undefined"]}}
    """
    return json.dumps(verdict.to_dict(), indent=indent, allow_nan=False, default=str)


def to_junit(verdict: Verdict, *, name: str = "qa gate") -> str:
    """The verdict as JUnit XML: one testsuite, one testcase per check, a ``<failure>`` per failed one.

    Parameters
    ----------
    verdict : Verdict
    name : str, default "qa gate"
        The testsuite name; the pack is appended.

    Returns
    -------
    str
        An XML document (UTF-8 declaration included).

    Notes
    -----
    The testcase ``classname`` is ``qa.gate.<scope>`` so CI systems group checks by scope; its
    ``name`` is the check's readable name. Skipped checks appear as testcases with ``<skipped>``.
    Every text is :func:`qa._text.visible`: XML 1.0 cannot hold the control characters (ESC, NUL) a
    category or annotator name may carry, so they are written as escapes (``\\x1b``).
    """
    import xml.etree.ElementTree as ET

    def sub(parent, tag, **attrs):
        return ET.SubElement(parent, tag, {k: visible(v) for k, v in attrs.items()})

    stats = verdict.statistics
    empty = int(verdict.empty)  # a gate that checked nothing is one failed testcase
    suite_name = f"{name}: {Path(verdict.meta['pack']).name}" if verdict.meta.get("pack") else name
    suites = ET.Element("testsuites", name=visible(name), tests=str(stats["evaluated"] + len(verdict.skipped) + empty),
                        failures=str(stats["failed"] + empty), errors="0")
    suite = sub(suites, "testsuite", name=suite_name, tests=str(stats["evaluated"] + len(verdict.skipped) + empty),
                failures=str(stats["failed"] + empty), errors="0", skipped=str(len(verdict.skipped)))
    props = sub(suite, "properties")
    for key in ("run_id", "tool_version", "pack", "baseline_run_id"):
        if verdict.meta.get(key) is not None:
            sub(props, "property", name=key, value=str(verdict.meta[key]))
    for annotator, digest in sorted((verdict.meta.get("fingerprints") or {}).items()):
        sub(props, "property", name=f"sha256:{annotator}", value=str(digest))
    for result in verdict.results:
        case = sub(suite, "testcase", classname=f"qa.gate.{result.scope}", name=result.name, time="0")
        if not result.passed:
            failure = sub(case, "failure", type=result.op, message=result.message)
            failure.text = visible(f"metric={result.metric} scope={result.scope} key={result.key} "
                                   f"observed={_fmt(result.observed)} bound={result.bound:g}"
                                   + (f" baseline={_fmt(result.baseline)}" if result.baseline is not None else "")
                                   + (f" n={result.n}" if result.n is not None else ""))
    if empty:
        case = sub(suite, "testcase", classname="qa.gate.batch", name="at least one check", time="0")
        sub(case, "failure", type="empty", message=verdict.summary_line())
    for text in verdict.skipped:
        case = sub(suite, "testcase", classname="qa.gate.skipped", name=text.split(":")[0], time="0")
        sub(case, "skipped", message=text)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def to_text(verdict: Verdict, *, failed_only: bool = False) -> str:
    """One line per check (``FAIL``/``pass``, name, message; control characters in names escaped), then
    the summary line."""
    lines = []
    for r in verdict.results:
        if failed_only and r.passed:
            continue
        n = f" (n={r.n})" if r.n is not None else ""
        lines.append(visible(f"{'pass' if r.passed else 'FAIL'}  {r.name}: {r.message}{n}"))
    for text in verdict.skipped:
        lines.append(visible(f"skip  {text}"))
    lines.append(verdict.summary_line())
    return "\n".join(lines)
