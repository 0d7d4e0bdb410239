"""Label Studio JSON: real exports, a hand-written fixture, brush RLE round trips and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from common import rle_to_mask, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ls_decode_rle
from skimage.draw import polygon as draw_polygon

from qa.engine._masks import polygons_to_rle
from qa.errors import InputError
from qa.formats import detect, load
from qa.formats._ls_rle import decode_mask
from qa.formats.label_studio import image_key

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "label_studio"
CONVERTER = "label_studio_converter_tests/tests/data"


# --- a Label Studio brush encoder, written out plainly (the decoder is reference.ls_decode_rle) --------

def ls_encode(values, *, word_size=8, rle_sizes=(3, 4, 8, 16), literals=False) -> list[int]:
    """Encode a flat value array as Label Studio's RLE (thi.ng rle-pack), as a list of bytes.

    Runs of equal values become repeat blocks; with ``literals``, consecutive single values are
    grouped into literal blocks (as rle-pack's own encoder does), else each is a literal of one value.
    """
    values = [int(v) for v in values]
    runs = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    bits = [f"{len(values):032b}", f"{word_size - 1:05b}"] + [f"{s - 1:04b}" for s in rle_sizes]
    longest = 1 << rle_sizes[-1]

    def size_index(n):
        return next(k for k, s in enumerate(rle_sizes) if n - 1 < (1 << s))

    pending: list[int] = []

    def flush():
        while pending:
            chunk, rest = pending[:longest], pending[longest:]
            k = size_index(len(chunk))
            bits.append("0" + f"{k:02b}" + format(len(chunk) - 1, f"0{rle_sizes[k]}b"))
            bits.extend(format(v, f"0{word_size}b") for v in chunk)
            pending[:] = rest

    for value, n in runs:
        if n == 1:
            pending.append(value)
            if not literals:
                flush()
            continue
        flush()
        while n > 0:
            chunk = min(n, longest)
            k = size_index(chunk)
            bits.append("1" + f"{k:02b}" + format(chunk - 1, f"0{rle_sizes[k]}b") + format(value, f"0{word_size}b"))
            n -= chunk
    flush()
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return [int(stream[i:i + 8], 2) for i in range(0, len(stream), 8)]


def rgba(mask, colour=(255, 0, 0)):
    """The RGBA canvas Label Studio's brush paints: colour with alpha 255 on the mask, zeros elsewhere."""
    h, w = mask.shape
    canvas = np.zeros((h, w, 4), np.int64)
    canvas[mask.astype(bool)] = (*colour, 255)
    return canvas.ravel()


def blobs(h, w, seed, density=0.5):
    rng = np.random.default_rng(seed)
    return (rng.random((h, w)) < density).astype(np.uint8)


# --- brush RLE ------------------------------------------------------------------------------------

MASKS = {
    "empty": np.zeros((7, 9), np.uint8),
    "full": np.ones((7, 9), np.uint8),
    "dot": np.pad(np.ones((1, 1), np.uint8), ((3, 3), (4, 4))),
    "checkerboard": (np.indices((8, 11)).sum(axis=0) % 2).astype(np.uint8),
    "noise": blobs(23, 31, 0),
    "sparse": blobs(40, 17, 1, density=0.05),
}


@pytest.mark.parametrize("name", sorted(MASKS))
@pytest.mark.parametrize("literals", [False, True])
@pytest.mark.parametrize("colour", [(255, 0, 0), (255, 255, 255)])
def test_brush_decoder_matches_the_reference(name, literals, colour):
    mask = MASKS[name]
    rle = ls_encode(rgba(mask, colour), literals=literals)
    reference = ls_decode_rle(rle).reshape(*mask.shape, 4)[:, :, 3]
    np.testing.assert_array_equal(reference != 0, mask.astype(bool))
    decoded, problem = decode_mask(rle, *mask.shape)
    assert problem is None
    np.testing.assert_array_equal(decoded, mask)


@pytest.mark.parametrize("word_size, rle_sizes", [(8, (3, 4, 8, 16)), (10, (1, 2, 5, 7)), (16, (2, 4, 6, 3))])
def test_brush_decoder_reads_the_header_parameters(word_size, rle_sizes):
    mask = np.zeros((30, 40), np.uint8)
    mask[5:25, 3:37] = 1  # long runs: several blocks of the largest size when it is small
    rle = ls_encode(rgba(mask), word_size=word_size, rle_sizes=rle_sizes, literals=True)
    decoded, problem = decode_mask(rle, 30, 40)
    assert problem is None
    np.testing.assert_array_equal(decoded, mask)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1), st.booleans())
def test_brush_round_trip_property(h, w, seed, literals):
    mask = blobs(h, w, seed, density=seed % 7 / 6)
    decoded, problem = decode_mask(ls_encode(rgba(mask), literals=literals), h, w)
    assert problem is None
    np.testing.assert_array_equal(decoded, mask)


def _brush_task(rle, h, w, label="Road"):
    return [{"id": 1, "data": {"image": "/data/upload/1/0123abcd-road.png"}, "annotations": [
        {"id": 1, "completed_by": {"id": 9, "email": "carol@example.com"}, "result": [
            {"id": "b1", "type": "brushlabels", "from_name": "tag", "to_name": "image",
             "original_width": w, "original_height": h,
             "value": {"format": "rle", "rle": rle, "brushlabels": [label]}}]}]}]


def test_brush_mask_round_trips_through_the_loader(tmp_path):
    mask = np.zeros((48, 64), np.uint8)
    yy, xx = np.mgrid[:48, :64]
    mask[(yy - 20) ** 2 + (xx - 30) ** 2 < 15 ** 2] = 1
    mask[blobs(48, 64, 3, density=0.1).astype(bool)] ^= 1  # fragment it
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_brush_task(ls_encode(rgba(mask, (0, 128, 255))), 48, 64)))
    (export,) = load(path)
    assert export.annotator == "carol@example.com" and list(export.images) == ["road.png"]
    (obj,) = export.objects
    assert obj.kind == "rle" and obj.category == "Road" and obj.attributes["shape"] == "brush"
    assert obj.rle["size"] == [48, 64]
    np.testing.assert_array_equal(rle_to_mask(obj.rle), mask)


@pytest.mark.parametrize("mangle, code, text", [
    (lambda rle: rle[:-3], "FMT002", "stream ends before all pixels"),
    (lambda rle: rle[:5], "FMT002", "stream ends before all pixels"),
    (lambda rle: [255, 255] + rle[2:], "FMT003", "expected height x width x 4 = 6x5x4 = 120"),
    (lambda rle: rle + [256], "FMT002", "list of bytes"),
])
def test_bad_brush_is_a_finding(tmp_path, mangle, code, text):
    mask = blobs(6, 5, 4)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_brush_task(mangle(ls_encode(rgba(mask))), 6, 5)))
    (export,) = load(path)
    assert export.objects == []
    (f,) = export.findings
    assert f.code == code and text in f.message
    assert f.source.where == "task[0].annotations[0].result[0] id=b1"


def test_block_running_past_the_end_is_a_finding():
    # header for 4 values (1 pixel), then a repeat block of 8 values
    bits = f"{4:032b}{7:05b}{2:04b}{3:04b}{7:04b}{15:04b}" + "1" + "00" + f"{7:03b}" + f"{255:08b}"
    bits += "0" * (-len(bits) % 8)
    data = [int(bits[k:k + 8], 2) for k in range(0, len(bits), 8)]
    assert decode_mask(data, 1, 1) == (None, "brush RLE block runs past the end of the image")


# --- real exports: percent polygons land on the right pixels ---------------------------------------

def test_converter_polygon_export(shared_data):
    path = shared_data / CONVERTER / "test_export_yolo" / "data_polygons.json"
    assert detect(path) == "label_studio"
    (export,) = load(path)
    assert export.annotator == "user_1"
    assert list(export.images) == ["image2"]  # data.image is "/image2"
    image = export.images["image2"]
    assert (image.width, image.height) == (640, 426)
    (obj,) = export.objects
    assert obj.category == "Airplane" and obj.attributes["from_name"] == "label"
    poly = obj.polygons[0]
    assert poly.shape == (37, 2)
    raw = json.loads(path.read_text())[0]["annotations"][0]["result"][0]["value"]["points"]
    np.testing.assert_allclose(poly, np.array(raw) * [6.40, 4.26])
    assert poly[0].tolist() == pytest.approx([384.0, 19.55922865013774 * 4.26])
    # rasterised by the engine (pycocotools) and by an independent rasteriser (skimage), the masks agree
    ours = rle_to_mask(polygons_to_rle(obj.polygons, 426, 640)).astype(bool)
    rr, cc = draw_polygon(poly[:, 1], poly[:, 0], shape=(426, 640))
    theirs = np.zeros((426, 640), bool)
    theirs[rr, cc] = True
    iou = (ours & theirs).sum() / (ours | theirs).sum()
    assert iou > 0.97
    # bbox of the pixels matches the percent extremes scaled to the image
    ys, xs = np.nonzero(ours)
    assert abs(xs.min() - 60 * 6.4) <= 1 and abs(xs.max() - 90.45871559633028 * 6.4) <= 1
    assert abs(ys.min() - 14.876037504577349 * 4.26) <= 1 and abs(ys.max() - 83.7465564738292 * 4.26) <= 1


def test_converter_json_min_triangle_by_hand(shared_data):
    (export,) = load(shared_data / CONVERTER / "test_export_json_min" / "data.json")
    assert list(export.images) == ["example.png"]  # "/data/upload/29/example.png"
    (obj,) = export.objects
    # (44.44%, 48.25%), (42.54%, 60.32%), (56.19%, 50.79%) of 128 x 128
    np.testing.assert_allclose(obj.polygons[0], [[56.8889, 61.7651], [54.4508, 77.2063], [71.9238, 65.0159]],
                               atol=1e-4)
    mask = rle_to_mask(polygons_to_rle(obj.polygons, 128, 128))
    # the centroid (61.09, 68.00) is inside, the corners of the image and a point beyond an edge are not
    assert mask[68, 61] == 1 and mask[0, 0] == 0 and mask[127, 127] == 0 and mask[62, 70] == 0
    x, y = obj.polygons[0][:, 0], obj.polygons[0][:, 1]
    shoelace = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert abs(mask.sum() - shoelace) < 0.25 * shoelace


# --- hand-written fixture -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_exports():
    return {e.annotator: e for e in load(FIXTURES / "tasks.json")}


def test_fixture_annotators_and_images(fixture_exports):
    assert list(fixture_exports) == ["user_1", "bob@example.com"]  # user_3's annotation was cancelled
    for export in fixture_exports.values():
        assert list(export.images) == ["street.jpg", "park.jpg"]
    assert fixture_exports["bob@example.com"].objects[0].image == "street.jpg"
    assert (fixture_exports["user_1"].images["park.jpg"].width,
            fixture_exports["user_1"].images["park.jpg"].height) == (300, 150)


def test_fixture_regions(fixture_exports):
    objs = fixture_exports["user_1"].objects
    assert [(o.category, o.attributes["from_name"], o.attributes["shape"]) for o in objs] == [
        ("Car", "label", "polygon"), ("Sign", "boxes", "rectangle"), ("Wheel", "label", "ellipse"),
        ("Tree", "label", "polygon")]
    car, sign, wheel, tree = objs
    assert car.polygons[0].tolist() == [[20, 10], [100, 10], [100, 50], [20, 50]]
    assert car.occluded is True  # the "occluded" choices result shares the region's id
    # x=50% y=20% of 200x100 is (100, 20); 20x20 px turned 90 degrees clockwise about that corner
    np.testing.assert_allclose(sign.polygons[0], [[100, 20], [100, 40], [80, 40], [80, 20]], atol=1e-12)
    pts = wheel.polygons[0]  # centre (160, 50), radii 10 and 10 px
    np.testing.assert_allclose(np.hypot(pts[:, 0] - 160, pts[:, 1] - 50), 10.0)
    assert tree.polygons[0].tolist() == [[0, 0], [300, 0], [300, 150]]
    bob_sign = fixture_exports["bob@example.com"].objects[1]
    assert bob_sign.category == "Sign" and bob_sign.attributes["labels"] == ["Sign", "Pole"]


def test_fixture_findings(fixture_exports):
    got = {(f.code, f.severity, f.source.where) for e in fixture_exports.values() for f in e.findings}
    assert got == {
        ("FMT014", "warning", "task[2] id=103"),   # no region gives the image size
        ("FMT011", "error", "task[3] id=104"),     # no data
        ("FMT007", "error", "task[4] id=105"),     # ../outside.jpg
        ("FMT001", "error", "task[0].annotations[0].result[5] id=bad2"),
        ("FMT004", "error", "task[0].annotations[0].result[6] id=nolabel"),
        ("FMT002", "error", "task[0].annotations[0].result[7] id=brush1"),
        ("FMT003", "error", "task[0].annotations[0].result[8] id=size1"),
        ("FMT005", "error", "task[1].annotations[2] id=6"),
        ("FMT012", "info", "task[0].annotations[0].result[4] id=k1"),
        ("FMT012", "info", "task[0].annotations[1].result[2] id=t1"),
        ("FMT013", "info", "task[0].annotations[2] id=3"),
        ("FMT014", "warning", "task[0].annotations[1].result[1] id=q2"),  # two labels on one region
    }
    cancelled = [f for e in fixture_exports.values() for f in e.findings if f.code == "FMT013"]
    assert cancelled[0].message == "1 cancelled annotation skipped: was_cancelled is set (user_3 1)"


def test_options_rename_annotators_and_pick_the_image_field(tmp_path):
    doc = [{"id": 1, "data": {"img": "s3://bucket/dir/x.png", "caption": "a car"}, "annotations": [
        {"id": 1, "completed_by": 4, "result": [
            {"id": "a", "type": "polygonlabels", "from_name": "l", "to_name": "img", "original_width": 10,
             "original_height": 10, "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["c"]}}]}]}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    (export,) = load(path, options={"annotators": {"4": "dana"}, "image_field": "img"})
    assert export.annotator == "dana" and list(export.images) == ["x.png"]
    (export,) = load(path)  # two strings in data and no "image": the task is reported
    assert export.images == {} and export.findings[0].code == "FMT011"
    assert "image_field" in export.findings[0].message


@pytest.mark.parametrize("ref, key", [
    ("/data/upload/3/8a1b2c3d-name.jpg", "name.jpg"),
    ("/data/upload/12/deadbeef-a-b.png", "a-b.png"),
    ("/data/upload/12/not-hashed.png", "not-hashed.png"),
    ("/data/local-files/?d=frames%2F0001.png", "frames/0001.png"),
    ("http://host:8080/data/upload/1/x.jpg", "x.jpg"),
    ("gs://bucket/a/b/c.tif", "c.tif"),
    ("./images/a.jpg", "images/a.jpg"),
])
def test_image_keys(ref, key):
    assert image_key(ref) == key


# --- bad files ------------------------------------------------------------------------------------

def test_invalid_json_names_file_line_and_column():
    with pytest.raises(InputError) as info:
        load(FIXTURES / "malformed.json", format="label_studio")
    assert str(info.value) == (f"{FIXTURES / 'malformed.json'}: invalid JSON at line 3 column 33: "
                               "Expecting ',' delimiter")


def test_top_level_object_is_refused():
    with pytest.raises(InputError, match="top level is a JSON dict, expected a list of tasks"):
        load(FIXTURES / "not_a_list.json", format="label_studio")


def test_cli_runs_the_fixture(capsys):
    code, out, err = run_cli(["run", f"team={FIXTURES / 'tasks.json'}"], capsys)
    assert code == 0, err
    assert out.splitlines()[1].split()[:4] == ["team/user_1", "label_studio", "2", "4"]
    assert out.splitlines()[2].split()[:4] == ["team/bob@example.com", "label_studio", "2", "2"]


def test_geometry_and_labels_in_separate_results_of_one_region(tmp_path):
    # a <Polygon> tool with a separate <Labels> control: two result items share the region id
    points = [[10, 10], [60, 10], [60, 60]]
    doc = [{"id": 1, "data": {"image": "a.png"}, "annotations": [{"id": 1, "completed_by": 1, "result": [
        {"id": "x", "type": "polygon", "from_name": "poly", "to_name": "image", "original_width": 100,
         "original_height": 50, "value": {"points": points}},
        {"id": "x", "type": "labels", "from_name": "kind", "to_name": "image", "original_width": 100,
         "original_height": 50, "value": {"points": points, "labels": ["Car"]}}]}]}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    (export,) = load(path)
    (obj,) = export.objects
    assert obj.category == "Car" and obj.attributes["from_name"] == "poly"
    assert obj.polygons[0].tolist() == [[10, 5], [60, 5], [60, 30]]
    assert export.findings == []
