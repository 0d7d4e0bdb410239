"""FMT1xx rules: declared fields against the geometry, panoptic PNGs, group ids."""

import numpy as np
import pytest
from PIL import Image as PILImage

from common import make_batch, make_object, run_rule, square


def test_fmt101_bbox_mismatch():
    obj = make_object(square(10, 10, 80), bbox=(10.0, 10.0, 50.0, 80.0))
    (f,) = run_rule("FMT101", make_batch([obj]))
    assert f.value == 30.0 and f.limit == 1.0
    assert f.message == ("declared bbox [10, 10, 50, 80] differs from the geometry's [10, 10, 80, 80] "
                         "by 30.0 px (tolerance 1)")


@pytest.mark.parametrize("bbox", [(10.0, 10.0, 80.0, 80.0), (10.4, 10.0, 80.0, 80.5)])
def test_fmt101_either_convention_passes(bbox):
    assert run_rule("FMT101", make_batch([make_object(square(10, 10, 80), bbox=bbox)])) == []


def test_fmt101_empty_mask_takes_the_pycocotools_zero_box():
    needle = np.array([[10, 10], [40, 10.2], [10, 10.1]], float)  # rasterises to nothing
    assert run_rule("FMT101", make_batch([make_object(needle, bbox=(0.0, 0.0, 0.0, 0.0))])) == []


def test_fmt101_uses_the_mask_box_for_rle():
    from qa.engine._masks import mask_to_rle

    mask = np.zeros((100, 100), np.uint8)
    mask[20:30, 40:70] = 1
    good = make_object(kind="rle", rle=mask_to_rle(mask), bbox=(40.0, 20.0, 30.0, 10.0))
    bad = make_object(kind="rle", rle=mask_to_rle(mask), bbox=(40.0, 20.0, 30.0, 40.0))
    found = run_rule("FMT101", make_batch([good, bad]))
    assert [f.source.index for f in found] == [1]


def test_fmt102_area_mismatch():
    (f,) = run_rule("FMT102", make_batch([make_object(square(10, 10, 20), area=5000.0)]))
    assert f.value == pytest.approx(5000 / 400 - 1) and "declared area 5000 differs from the mask's 400 px" in f.message
    assert run_rule("FMT102", make_batch([make_object(square(10, 10, 20), area=400.0)])) == []
    assert run_rule("FMT102", make_batch([make_object(square(10, 10, 20))])) == []


def _panoptic(tmp_path, ids: np.ndarray, segments):
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    png = tmp_path / "img.png"
    PILImage.fromarray(rgb).save(png)
    objs = [make_object(kind="segment", segment_id=sid, area=area, bbox=bbox, category="thing")
            for sid, area, bbox in segments]
    h, w = ids.shape
    return make_batch(objs, size=(w, h), id_maps={"alice": {"img.png": png}})


def test_fmt103_segments_info_against_the_png(tmp_path):
    ids = np.zeros((20, 30), np.int64)
    ids[2:6, 3:13] = 7
    ids[10:20, 0:30] = 300
    batch = _panoptic(tmp_path, ids, [(7, 40.0, (3.0, 2.0, 10.0, 4.0)), (300, 310.0, (0.0, 10.0, 30.0, 10.0))])
    (f,) = run_rule("FMT103", batch)
    assert f.source.index == 1 and f.value == 10.0
    assert f.message == "segments_info area 310 differs from the PNG's 300 px by 10 px (tolerance 0)"
    batch = _panoptic(tmp_path, ids, [(7, 40.0, (3.0, 2.0, 11.0, 4.0))])
    (g,) = run_rule("FMT103", batch)
    assert "bbox [3, 2, 11, 4] differs from the PNG's [3, 2, 10, 4]" in g.message
    assert run_rule("FMT103", _panoptic(tmp_path, ids, [(7, 40.0, (3.0, 2.0, 10.0, 4.0))])) == []


def test_fmt104_unlabelled_share(tmp_path):
    ids = np.zeros((20, 30), np.int64)
    ids[:10] = 5
    ids[10:12] = 9   # in the PNG, not in segments_info: unlabelled too
    (f,) = run_rule("FMT104", _panoptic(tmp_path, ids, [(5, 300.0, None)]))
    assert f.value == pytest.approx(0.5) and f.source is None and f.image == "img.png"
    assert f.message == "50.0 % of the image is unlabelled (maximum 15 %)"
    ids[10:] = 6
    assert run_rule("FMT104", _panoptic(tmp_path, ids, [(5, 300.0, None), (6, 300.0, None)])) == []


def test_fmt105_dangling_group_id():
    objs = [make_object(square(10, 10, 10), group=3), make_object(square(30, 10, 10), group=4),
            make_object(square(50, 10, 10), group=4), make_object(square(70, 10, 10), group=0)]
    (f,) = run_rule("FMT105", make_batch(objs))
    assert f.source.index == 0 and f.message == "group id 3 has no other member in the image"


def test_fmt105_an_object_merged_from_several_shapes_is_not_dangling():
    merged = make_object(square(10, 10, 10), group=3)
    merged.attributes["shapes"] = 2  # two CVAT shapes of group 3, read as one object
    assert run_rule("FMT105", make_batch([merged])) == []
