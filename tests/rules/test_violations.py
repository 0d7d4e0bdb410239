"""A run's rule violations kept compact (qa/rules/violations.py): the order, counts and reads of the packed
findings equal those of the list they replace."""

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.gate import violation_counts as gate_counts
from qa.model import Finding, Source
from qa.rules.check import FindingDicts, finding_dict, json_default, sort_findings, violation_counts
from qa.rules.violations import ChainedFindings, PackedFindings, ViolationTable, chunk_violations, of_severity, tally
from qa.pickled import FileBlocks

ANNOTATORS = ["bob", "alice", "carol"]

_sources = st.one_of(st.none(), st.builds(
    Source, file=st.sampled_from(["b.json", "a.json", "É.json"]),
    index=st.one_of(st.none(), st.integers(0, 5)), id=st.one_of(st.none(), st.integers(0, 3), st.just("x")),
    section=st.sampled_from(["annotations", "shape", "images"])))
_findings = st.builds(
    Finding, code=st.sampled_from(["VTX001", "OCC002", "LAY005", "AGR001"]),
    severity=st.sampled_from(["error", "warning", "info"]), message=st.sampled_from(["m", "n", "same"]),
    annotator=st.sampled_from([None, "bob", "alice", "carol", "dave"]),
    image=st.one_of(st.none(), st.sampled_from(["img2", "img1", "img10"])), source=_sources,
    value=st.one_of(st.none(), st.floats(allow_nan=False)), limit=st.one_of(st.none(), st.just(3.0)))


def packed(chunks, blocks=None) -> PackedFindings:
    """The chunks' findings through the task's and the reduce's steps (each chunk pickled as a task sends it)."""
    table = ViolationTable(blocks)
    for chunk in chunks:
        table.add(pickle.loads(pickle.dumps(chunk_violations(chunk))))
    return table.finish(ANNOTATORS)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_findings, max_size=12), max_size=5))
def test_packed_findings_are_in_sort_findings_order(chunks):
    """Every key (unknown and missing annotators, sources without index, equal keys in several chunks)
    orders as sort_findings orders the chunks' findings joined in chunk order, ties included."""
    expected = sort_findings([f for chunk in chunks for f in chunk], ANNOTATORS)
    got = packed(chunks)
    assert list(map(repr, got)) == list(map(repr, expected))
    assert len(got) == len(expected) and bool(got) == bool(expected)
    assert tally(got) == tally(expected)
    assert violation_counts(got, ANNOTATORS) == violation_counts(expected, ANNOTATORS)
    assert gate_counts(got, ANNOTATORS) == gate_counts(expected, ANNOTATORS)
    for severity in ("error", "warning", "info", "fatal"):  # one severity's, read without the others
        chosen = [repr(f) for f in expected if f.severity == severity]
        assert list(map(repr, of_severity(got, severity))) == chosen
        assert list(map(repr, of_severity(expected, severity))) == chosen


def test_reads_by_position_slice_and_window(tmp_path, monkeypatch):
    """``[k]``, negative positions, slices and iteration over several windows give the list's findings;
    a copy sent elsewhere (pickled) needs no file."""
    import qa.rules.violations as violations

    monkeypatch.setattr(violations, "WINDOW", 7)
    chunks = [[Finding("VTX001", "error", f"m{c}-{k}", annotator=ANNOTATORS[(c + k) % 3], image=f"i{c}",
                       source=Source(f"{ANNOTATORS[(c + k) % 3]}.json", index=10 * c + k)) for k in range(9)]
              for c in range(6)]
    expected = sort_findings([f for chunk in chunks for f in chunk], ANNOTATORS)
    got = packed(chunks, FileBlocks.create(tmp_path / "violations.pickles"))
    assert list(got) == expected
    assert got[0] == expected[0] and got[-1] == expected[-1] and got[17] == expected[17]
    assert got[5:40:3] == expected[5:40:3] and got[::-1] == expected[::-1] and got[50:] == expected[50:]
    with pytest.raises(IndexError):
        got[len(expected)]
    assert got == expected and got.index(expected[20]) == 20
    copy = pickle.loads(pickle.dumps(got))
    (tmp_path / "violations.pickles").unlink()
    assert list(copy) == expected
    assert of_severity(copy, "error") == expected and of_severity(copy, "warning") == []


def test_no_violations():
    got = packed([[], []])
    assert len(got) == 0 and not got and list(got) == [] and got[0:3] == [] and tally(got) == {}
    assert of_severity(got, "error") == []
    assert violation_counts(got, ANNOTATORS) == []


def test_chained_findings_read_as_one_list():
    head = [Finding("FMT001", "warning", "a", annotator="bob"), Finding("ALN002", "error", "b")]
    rules = packed([[Finding("VTX001", "error", "c", annotator="alice", source=Source("a.json", index=k))
                     for k in range(5)]])
    chain = ChainedFindings([head, [], rules])
    whole = head + list(rules)
    assert len(chain) == 7 and list(chain) == whole and chain[-1] == whole[-1] and chain[1] == whole[1]
    assert all(chain[a:b] == whole[a:b] for a in range(-8, 9) for b in range(-8, 9))
    assert chain[::2] == whole[::2]
    assert tally(chain) == tally(whole) and gate_counts(chain, ANNOTATORS) == gate_counts(whole, ANNOTATORS)
    assert of_severity(chain, "error") == [f for f in whole if f.severity == "error"]
    assert of_severity(chain, "warning") == head[:1]


def test_summary_violations_write_as_a_list_of_dicts():
    findings = [Finding("VTX001", "error", "c", annotator="alice", image="i", source=Source("a.json", index=2, id=7),
                        value=float("inf"), limit=3.0)] * 3
    dicts = FindingDicts(packed([findings]))
    assert len(dicts) == 3 and dicts[0] == finding_dict(findings[0]) and dicts[1:] == [finding_dict(findings[0])] * 2
    assert json.loads(json.dumps({"v": dicts}, default=json_default)) == \
        json.loads(json.dumps({"v": [finding_dict(f) for f in findings]}))
    assert dicts == [finding_dict(f) for f in findings]
