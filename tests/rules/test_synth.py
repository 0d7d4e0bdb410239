"""Recall and precision of the rules on a ``qa synth`` batch with planted rule faults.

The batch plants every per-object rule fault for one annotator, dropped occluded flags for another
and swapped z_orders for the third, all with 0.5 px vertex jitter; ``planted.json`` lists each fault
with the rule it should trigger (``rule``), the rules it may trigger as a side effect (``also``) and
the other objects it involves (``related_ids``).

- Recall: a planted fault counts as found when its rule reports the fault's object (or one of its
  related objects) for its annotator; FMT101's fault plants a wrong bbox *and* a wrong area, so
  FMT102 finds it too.
- Precision: over the findings of the rules the batch plants (``rule`` or ``also``), a finding is
  right when it points at a planted fault's object, or at one of its related objects (LAY messages
  name the other object of the pair), with the fault's rule, a rule in its ``also`` list or a rule
  of the same family. Findings of the rules that compare annotators (OCC004, LAY005) may sit on
  another annotator's copy of the object.
"""

import json
import re
from pathlib import Path

import pytest

CROSS = ("OCC004", "LAY005")
FAULTS = ["*:jitter", "alice:drop_occluded", "bob:zorder", "carol:rule_faults"]


def _involved(fault) -> set:
    return {fault["object_id"], *fault.get("related_ids", [])}


def _named(finding) -> set:
    return {finding.source.id} | {int(m) for m in re.findall(r"id=(\d+)", finding.message)}


def _explains(fault, finding, *, exact: bool) -> bool:
    if finding.image != fault["image"] or not (_involved(fault) & _named(finding)):
        return False
    if finding.annotator != fault["annotator"] and finding.code not in CROSS:
        return False
    wanted = {fault["rule"]} | ({"FMT102"} if fault["rule"] == "FMT101" else set())
    if exact:
        return finding.code in wanted
    return finding.code in wanted | set(fault["also"]) or finding.code[:3] == fault["rule"][:3]


def measure(out: Path, pack="default"):
    """(recall, precision, found faults, faults, right findings, findings) of a pack on a synth batch."""
    import qa
    from qa.rules.check import check

    planted = json.loads((out / "planted.json").read_text(encoding="utf-8"))
    faults = [f for f in planted["faults"] if f["rule"]]
    measured = {r for f in faults for r in (f["rule"], *f["also"])} | {"FMT102"}
    findings = [f for f in check(qa.load(manifest=out / "batch.toml"), pack) if f.code in measured]
    found = sum(any(_explains(f, x, exact=True) for x in findings) for f in faults)
    right = sum(any(_explains(f, x, exact=False) for f in faults) for x in findings)
    return found / len(faults), right / len(findings), found, len(faults), right, len(findings)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_rules_find_planted_faults(tmp_path, seed, capsys):
    synth = pytest.importorskip("qa.synth")
    synth.synthesize(tmp_path / "batch", images=8, size=(256, 512), annotators=3, seed=seed, faults=FAULTS,
                     formats=("coco",), workers=1)
    recall, precision, found, n_faults, right, n_findings = measure(tmp_path / "batch")
    with capsys.disabled():
        print(f"\nqa synth seed {seed}: recall {found}/{n_faults} = {recall:.3f}, "
              f"precision {right}/{n_findings} = {precision:.3f}")
    assert n_faults > 80
    assert recall >= 0.95 and precision >= 0.95
