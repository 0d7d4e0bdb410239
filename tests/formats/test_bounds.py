"""The bounds every loaded object meets, whatever its format (qa.formats._bounds)."""

from __future__ import annotations

import numpy as np
import pytest

from qa.engine._masks import mask_to_rle
from qa.formats._bounds import check_export
from qa.model import Export, Image, Object, Source

TRIANGLE = np.array([[1.0, 1.0], [9.0, 1.0], [1.0, 9.0]])


def _export(*objects):
    export = Export(annotator="a", path="e.json", format="coco")
    export.images["a.png"] = Image(key="a.png", file_name="a.png", width=64, height=48)
    export.images["b.png"] = Image(key="b.png", file_name="b.png", width=8, height=6)
    for k, (image, kind, geometry, attributes) in enumerate(objects):
        extra = {"polygons": geometry} if kind == "polygon" else {"rle": geometry}
        export.objects.append(Object(annotator="a", image=image, category="car", kind=kind,
                                     source=Source("e.json", k, 100 + k), attributes=dict(attributes), **extra))
    return export


def test_only_the_objects_out_of_bounds_are_left_out_each_with_its_source():
    far_second_part = (TRIANGLE, TRIANGLE + [0, 1e9])
    export = _export(
        ("a.png", "polygon", (TRIANGLE,), {}),                                   # kept
        ("a.png", "polygon", (np.array([[0, 0], [128, 0], [0, 96]]),), {}),      # ints, just within 2 x size: kept
        ("b.png", "polygon", (np.array([[0, 0], [17.0, 0], [0, 5]]),), {}),      # 17 > 2 x 8 on this image
        ("a.png", "polygon", far_second_part, {}),
        ("a.png", "polygon", (np.array([[0, 0], [np.nan, 0], [0, 5]]),), {}),
        ("a.png", "polygon", (np.array([[0, 0], [1, 0]]),), {}),
        ("a.png", "polygon", (np.array([["0", "0"], ["1", "0"], ["0", "1"]], dtype=object),), {}),
        ("a.png", "rle", mask_to_rle(np.zeros((6, 8), np.uint8)), {}),           # RLE of b.png's size on a.png
        ("b.png", "rle", mask_to_rle(np.ones((6, 8), np.uint8)), {}),            # kept
        ("a.png", "polygon", (TRIANGLE * 1e300,), {"shape": "ellipse"}),
    )
    check_export(export)
    assert [o.source.index for o in export.objects] == [0, 1, 8]
    got = {f.source.index: (f.code, f.message) for f in export.findings}
    assert got == {
        2: ("FMT001", "polygon part 0 has the vertex (17, 0), farther outside the 8x6 image than its own size; "
                      "object left out"),
        3: ("FMT001", "polygon part 1 has the vertex (1, 1e+09), farther outside the 64x48 image than its own "
                      "size; object left out"),
        4: ("FMT001", "polygon holds a NaN or infinite coordinate; object left out"),
        5: ("FMT001", "polygon has 2 points, at least 3 are needed; object left out"),
        6: ("FMT001", "polygon part 0 holds a value that is not a number; object left out"),
        7: ("FMT003", "RLE size [6, 8] (height, width) differs from the image's [48, 64]; object left out"),
        9: ("FMT001", "ellipse has the vertex (1e+300, 1e+300), farther outside the 64x48 image than its own "
                      "size; object left out"),
    }
    assert all(f.severity == "error" and f.image in ("a.png", "b.png") for f in export.findings)


@pytest.mark.parametrize("attributes, kept, message", [
    ({"occluded": True, "z_order": 3, "group": -2}, {"occluded": True, "z_order": 3, "group": -2}, None),
    ({"occluded": "maybe"}, {}, "occluded 'maybe' is not a yes/no flag; ignored"),
    ({"occluded": None, "z_order": None}, {}, None),
    ({"z_order": "top", "colour": "red"}, {"colour": "red"}, "z_order 'top' is not an integer; ignored"),
    ({"z_order": True}, {}, "z_order True is not an integer; ignored"),
    ({"group": 2 ** 31}, {}, "group 2147483648 is outside the 32-bit integer range; ignored"),
    ({"z_order": 10 ** 400}, {}, "z_order an integer of 401 digits is outside the 32-bit integer range; ignored"),
    ({"z_order": np.int64(7)}, {"z_order": 7}, None),
])
def test_attributes_of_the_wrong_type_are_dropped_with_a_warning(attributes, kept, message):
    export = _export(("a.png", "polygon", (TRIANGLE,), attributes))
    check_export(export)
    [obj] = export.objects
    assert obj.attributes == kept
    assert [f.message for f in export.findings] == ([message] if message else [])
    assert all((f.code, f.severity) == ("FMT016", "warning") for f in export.findings)
    assert obj.z_order == kept.get("z_order")  # the model's accessors no longer meet text
