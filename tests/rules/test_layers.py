"""LAY rules: z_order ties, stuff above things, buried objects, visible-only overlaps, reversed pairs."""

import pytest

from common import make_batch, make_object, run_rule, square


def test_lay001_z_order_tie():
    objs = [make_object(square(10, 10, 30), z=0), make_object(square(30, 10, 30), z=0)]
    (f,) = run_rule("LAY001", make_batch(objs))
    assert f.source.index == 1 and f.value == 300.0
    assert f.message == "object overlaps annotations[0] id=1 by 300 px with the same z_order 0"
    objs[1].attributes["z_order"] = 1
    assert run_rule("LAY001", make_batch(objs)) == []


def test_lay001_touching_objects_do_not_overlap():
    objs = [make_object(square(10, 10, 30), z=0), make_object(square(40, 10, 30), z=0)]
    assert run_rule("LAY001", make_batch(objs)) == []


def test_lay002_stuff_above_thing():
    objs = [make_object(square(20, 20, 20), category="car", z=1), make_object(square(0, 0, 100), category="road", z=2)]
    (f,) = run_rule("LAY002", make_batch(objs, stuff=("road",)))
    assert f.source.index == 1 and f.value == 400.0
    assert "stuff 'road' is drawn above thing 'car'" in f.message
    objs[1].attributes["z_order"] = 0
    assert run_rule("LAY002", make_batch(objs, stuff=("road",))) == []


def test_lay003_buried_object():
    objs = [make_object(square(20, 20, 20), z=0), make_object(square(10, 10, 40), z=1)]
    (f,) = run_rule("LAY003", make_batch(objs))
    assert f.source.index == 0 and f.value == 0.0
    assert f.message == "object is 0.0 % visible under the objects above it (minimum 5 %), mostly under annotations[1] id=2"
    objs[0].attributes["z_order"] = 2
    assert run_rule("LAY003", make_batch(objs)) == []


def test_lay004_overlap_in_visible_only():
    objs = [make_object(square(10, 10, 40)), make_object(square(46, 10, 40))]
    (f,) = run_rule("LAY004", make_batch(objs))
    assert f.source.index == 1 and f.value == pytest.approx(0.1) and f.limit == 0.01
    assert f.message.startswith("object overlaps annotations[0] id=1 by 160 px, 10.0 % of the smaller object")
    adjacent = [make_object(square(10, 10, 40)), make_object(square(50, 10, 40))]
    assert run_rule("LAY004", make_batch(adjacent)) == []


def _pair(z_a, z_b, dx=0):
    return [make_object(square(10 + dx, 10, 40), category="car", z=z_a),
            make_object(square(30 + dx, 20, 40), category="person", z=z_b)]


def test_lay005_reversed_between_two_annotators():
    batch = make_batch({"alice": _pair(0, 1), "bob": _pair(1, 0, dx=1)})
    found = run_rule("LAY005", batch)
    assert sorted((f.annotator, f.source.index) for f in found) == [("alice", 1), ("bob", 0)]
    assert "but 1 of 1 other annotators put it below (bob)" in [f for f in found if f.annotator == "alice"][0].message
    same = make_batch({"alice": _pair(0, 1), "bob": _pair(3, 7, dx=1)})
    assert run_rule("LAY005", same) == []


def test_lay005_majority_decides_with_three_annotators():
    batch = make_batch({"alice": _pair(0, 1), "bob": _pair(1, 0), "carol": _pair(5, 2, dx=-1)})
    (f,) = run_rule("LAY005", batch)
    assert f.annotator == "alice" and f.value == 1.0


def test_lay005_counts_each_other_annotator_in_batch_order():
    """Each other annotator who matched both objects counts once, for or against; the report names
    those against in batch order."""
    batch = make_batch({"alice": _pair(0, 1), "bob": _pair(1, 0, dx=1), "carol": _pair(2, 0),
                        "dave": _pair(0, 4, dx=-1)})
    found = {(f.annotator, f.source.index): f for f in run_rule("LAY005", batch)}
    assert sorted(found) == [("alice", 1), ("bob", 0), ("carol", 0), ("dave", 1)]
    assert found[("alice", 1)].value == pytest.approx(2 / 3)
    assert found[("alice", 1)].message.endswith("but 2 of 3 other annotators put it below (bob, carol)")
    assert found[("bob", 0)].message.endswith("but 2 of 3 other annotators put it below (alice, dave)")
    assert found[("dave", 1)].message.endswith("(z_order 4 over 0) but 2 of 3 other annotators put it below "
                                                "(bob, carol)")
