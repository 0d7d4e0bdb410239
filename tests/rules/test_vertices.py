"""VTX rules: each fires on a hand-built polygon that breaks it and stays quiet on one that does not."""

import numpy as np
import pytest

from common import circle, make_batch, make_object, run_rule, square


def fired(rule_id, polygons, size=(100, 100), **params):
    objs = [make_object(p) for p in polygons]
    return run_rule(rule_id, make_batch(objs, size=size), **params)


def test_vtx001_sparse_polygon():
    (f,) = fired("VTX001", [square(20, 20, 150)], size=(200, 200))
    assert f.code == "VTX001" and f.value == pytest.approx(100 * 4 / 600) and f.limit == 1.0
    assert f.message == "polygon has 4 vertices on a 600 px outline (0.7 per 100 px, minimum 1)"
    assert fired("VTX001", [circle(100, 100, 60, n=64)], size=(200, 200)) == []
    # per-object arrays: the same square passes a lower minimum
    assert fired("VTX001", [square(20, 20, 150)], size=(200, 200), min_vertices_per_100px=0.5) == []


def test_vtx001_short_outlines_are_not_checked():
    assert fired("VTX001", [square(10, 10, 8)], min_vertices_per_100px=20.0) == []


def test_vtx002_dense_polygon():
    (f,) = fired("VTX002", [circle(50, 50, 20, n=200)])
    assert f.value > 150 and f.limit == 50.0
    assert fired("VTX002", [circle(50, 50, 20, n=32)]) == []


def test_vtx003_too_few_vertices():
    triangle = np.array([[10, 10], [60, 10], [30, 50]], float)
    (f,) = fired("VTX003", [triangle])
    assert (f.value, f.limit) == (3.0, 4.0)
    assert f.message == "polygon part has 3 vertices (minimum 4)"
    assert fired("VTX003", [square(10, 10, 40)]) == []
    road = make_batch([make_object(triangle, category="road")], stuff=("road",))
    assert run_rule("VTX003", road) == []  # stuff tiles have triangles at corners


def test_vtx004_duplicate_vertex():
    poly = np.array([[10, 10], [50, 10], [50, 10], [50, 50], [10, 50], [10, 50]], float)
    (f,) = fired("VTX004", [poly])
    assert f.value == 2.0
    assert "first at vertex 1 of part 0, (50, 10)" in f.message


def test_vtx004_explicitly_closed_ring_is_not_a_duplicate():
    closed = np.vstack([square(10, 10, 40), [[10, 10]]])
    assert fired("VTX004", [closed]) == []
    nearly = np.vstack([square(10, 10, 40), [[10.05, 10]]])
    assert fired("VTX004", [nearly]) == []
    assert len(fired("VTX004", [nearly], tolerance_px=0.1)) == 1


def test_vtx005_collinear_run():
    poly = np.array([[10, 10], [20, 10], [30, 10], [40, 10], [50, 10], [50, 50], [10, 50]], float)
    (f,) = fired("VTX005", [poly], min_vertices=4)
    assert f.value == pytest.approx(3 / 7)
    assert f.message == "3 of 7 vertices lie on straight runs (43 %, maximum 30 %)"
    assert fired("VTX005", [poly]) == []  # fewer than min_vertices = 10
    assert fired("VTX005", [circle(50, 50, 30)]) == []
    # a spike (vertex beyond its neighbours) is not redundant
    spike = np.array([[10, 10], [50, 10], [30, 10], [30, 50]], float)
    assert fired("VTX005", [spike], max_redundant_share=0.0, min_vertices=3) == []


def test_vtx005_runs_along_the_image_border_are_not_counted():
    frame = np.array([[0, 0], [25, 0], [50, 0], [75, 0], [100, 0], [100, 30], [0, 30]], float)
    assert fired("VTX005", [frame], max_redundant_share=0.0, min_vertices=3) == []
    inside = frame + [0, 1]
    assert len(fired("VTX005", [inside], max_redundant_share=0.0, min_vertices=3)) == 1


def test_vtx005_vertices_shared_with_a_neighbour_are_not_counted():
    top = np.array([[10, 10], [90, 10], [90, 40], [70, 40], [50, 40], [30, 40], [10, 40]], float)
    bottom = np.array([[10, 40], [30, 40], [50, 40], [70, 40], [90, 40], [90, 80], [10, 80]], float)
    assert fired("VTX005", [top, bottom], max_redundant_share=0.0, min_vertices=3) == []
    assert len(fired("VTX005", [top], max_redundant_share=0.0, min_vertices=3)) == 1


def test_vtx006_self_intersection():
    (f,) = fired("VTX006", [np.array([[0, 0], [10, 10], [10, 0], [0, 10]], float) + 20])
    assert f.message == "polygon part 0 is invalid: Self-intersection[25 25]"
    assert fired("VTX006", [square(10, 10, 30)]) == []


def test_vtx007_sliver_and_zero_area():
    (f,) = fired("VTX007", [square(10, 10, 0.5, width=50)])
    assert f.value == pytest.approx(2 * 25 / 101) and "is a sliver" in f.message
    (g,) = fired("VTX007", [np.array([[10, 10], [30, 10], [50, 10]], float)])
    assert g.value == 0.0 and "has zero area" in g.message
    assert fired("VTX007", [square(10, 10, 2)]) == []


def test_vtx008_vertex_outside_image():
    (f,) = fired("VTX008", [np.array([[-5, 10], [50, 10], [50, 50]], float)])
    assert f.value == 5.0 and f.message.startswith("1 vertices lie outside the 100x100 image, up to 5.0 px")
    assert fired("VTX008", [np.array([[0, 0], [100, 0], [100, 100]], float)]) == []


def test_vertex_rules_work_on_many_objects_and_parts_at_once():
    objs = [make_object(square(5 + 10 * k, 5, 6)) for k in range(8)]
    objs.append(make_object(parts=[square(10, 60, 20), np.array([[0, 0], [5, 5], [5, 0], [0, 5]], float) + 70]))
    objs[3] = make_object(np.array([[35, 5], [41, 5], [41, 5], [41, 11], [35, 11]], float))
    batch = make_batch(objs)
    assert [f.source.index for f in run_rule("VTX006", batch)] == [8]
    assert [f.source.index for f in run_rule("VTX004", batch)] == [3]
    assert "part 1" in run_rule("VTX006", batch)[0].message


def test_rle_objects_have_no_vertices():
    from qa.engine._masks import mask_to_rle

    mask = np.zeros((100, 100), np.uint8)
    mask[10:20, 10:90] = 1
    obj = make_object(kind="rle", rle=mask_to_rle(mask))
    batch = make_batch([obj])
    for rule_id in ("VTX001", "VTX002", "VTX003", "VTX004", "VTX005", "VTX006", "VTX007", "VTX008"):
        assert run_rule(rule_id, batch) == []
