"""The Python API: ``qa.load`` returns the aligned batch, ``qa.decode`` turns objects into masks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from common import coco_area, write_json
from PIL import Image as PILImage

import qa
from qa.errors import ConfigError
from qa.manifest import ExportSpec


def _exports(tmp_path):
    """A COCO export with a two-part polygon, a compressed RLE and an empty RLE, and a panoptic one."""
    from pycocotools import mask as mask_utils

    mask = np.zeros((12, 16), np.uint8)
    mask[2:7, 9:14] = 1
    mask[4, 11] = 0  # a hole
    rle = mask_utils.encode(np.asfortranarray(mask))
    coco = write_json(tmp_path / "alice.json", {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 16, "height": 12}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1,
             "segmentation": [[1, 1, 6, 1, 6, 5, 1, 5], [2.5, 7, 7.5, 9, 2.5, 11]]},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [12, 16], "counts": rle["counts"].decode()}},
            {"id": 3, "image_id": 1, "category_id": 1, "segmentation": {"size": [12, 16], "counts": [192]}},
        ]})
    ids = np.zeros((12, 16), np.uint32)
    ids[3:9, 2:6] = 300
    ids[0:2, :] = 7
    rgb = np.stack([ids & 255, (ids >> 8) & 255, ids >> 16], axis=-1).astype(np.uint8)
    (tmp_path / "bob").mkdir()
    PILImage.fromarray(rgb, "RGB").save(tmp_path / "bob" / "x.png")
    panoptic = write_json(tmp_path / "bob.json", {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 16, "height": 12}],
        "categories": [{"id": 1, "name": "car", "isthing": 1}, {"id": 2, "name": "sky", "isthing": 0}],
        "annotations": [{"image_id": 1, "file_name": "x.png", "segments_info": [
            {"id": 300, "category_id": 1, "area": 24, "bbox": [2, 3, 4, 6], "iscrowd": 0},
            {"id": 7, "category_id": 2, "area": 32, "bbox": [0, 0, 16, 2], "iscrowd": 0}]}]})
    return coco, panoptic, mask


def test_load_forms(tmp_path):
    coco, panoptic, _ = _exports(tmp_path)
    by_string = qa.load(f"alice={coco}", f"bob={panoptic}")
    by_dict = qa.load({"alice": coco, "bob": panoptic})
    by_spec = qa.load(ExportSpec("alice", coco), ExportSpec("bob", panoptic, format="coco_panoptic"))
    by_path = qa.load(coco, panoptic)  # named after the files
    for batch in (by_string, by_dict, by_spec):
        assert batch.annotators == ["alice", "bob"]
        assert [len(batch.exports[a].objects) for a in batch.annotators] == [3, 2]
        assert batch.coverage == {"x.jpg": ("alice", "bob")}
        assert list(batch.categories) == ["car", "sky"]
    assert by_path.annotators == ["alice", "bob"]
    assert by_string.exports["bob"].format == "coco_panoptic"


def test_load_rejects_nothing_and_nonsense():
    with pytest.raises(ConfigError, match="no exports given"):
        qa.load()
    with pytest.raises(ConfigError, match="cannot read an export from 3"):
        qa.load(3)


def test_decode_crop_and_full_agree(tmp_path):
    coco, panoptic, mask = _exports(tmp_path)
    batch = qa.load(f"alice={coco}", f"bob={panoptic}")
    seen = 0
    for obj in batch.objects():
        full = qa.decode(obj, batch)
        crop, (x0, y0) = qa.decode(obj, batch, crop=True)
        assert full.shape == (12, 16) and full.dtype == np.uint8 and crop.dtype == np.uint8
        h, w = crop.shape
        np.testing.assert_array_equal(full[y0:y0 + h, x0:x0 + w], crop)
        assert full.sum() == crop.sum()
        if full.any():  # the crop is tight: every border row and column holds a pixel
            assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
        seen += 1
    assert seen == 5
    polygon, rle, empty = batch.exports["alice"].objects
    doc_polygon = [[1, 1, 6, 1, 6, 5, 1, 5], [2.5, 7, 7.5, 9, 2.5, 11]]
    assert qa.decode(polygon, batch).sum() == coco_area(doc_polygon, 12, 16)
    np.testing.assert_array_equal(qa.decode(rle, batch), mask)
    assert qa.decode(rle, batch, crop=True)[1] == (9, 2)
    crop, offset = qa.decode(empty, batch, crop=True)
    assert crop.size == 0 and not qa.decode(empty, batch).any()
    car, sky = batch.exports["bob"].objects
    assert qa.decode(car, batch, crop=True)[0].shape == (6, 4) and qa.decode(car, batch, crop=True)[1] == (2, 3)
    assert qa.decode(sky, batch).sum() == 32


def test_import_qa_is_light():
    code = ("import sys, qa; heavy = [m for m in ('numpy', 'numba', 'duckdb', 'pandas', 'pycocotools', 'PIL', "
            "'dask', 'distributed') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_qa_help_does_not_import_dask():
    code = ("import sys, contextlib, io\nfrom qa.cli import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--help']); main(['run', '--help'])\nprint([m for m in ('dask', 'distributed') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_qa_run_stays_callable_after_use(tmp_path):
    """``qa.run`` is the function, not a submodule shadowing it, however often it is called."""
    import qa

    path = write_json(tmp_path / "a.json", {
        "images": [{"id": 1, "file_name": "x.png", "width": 8, "height": 8}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                         "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]]}],
    })
    for _ in range(2):
        result = qa.run(f"alice={path}", f"bob={path}", store=False)
        assert result.summary["pairs"][0]["mask_iou_mean"] == 1.0


# --- one typed shape for a run ---------------------------------------------------------------------------

def _pair(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "x.jpg", "width": 8, "height": 6}],
           "categories": [{"id": 1, "name": "car"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4]]}]}
    return f"a={write_json(tmp_path / 'a.json', doc)}", f"b={write_json(tmp_path / 'b.json', doc)}"


def test_run_options_from_keywords_or_a_record(tmp_path):
    exports = _pair(tmp_path)
    by_keywords = qa.run(*exports, workers=1, store=False, tolerances=(2,), pack=None)
    options = qa.RunOptions(workers=1, store=False, tolerances=(2,), pack=None)
    by_record = qa.run(*exports, options=options)
    assert by_keywords.options == by_record.options == options
    assert by_keywords.settings == by_record.settings
    assert by_keywords.settings["compare"]["tolerances"] == [2]
    # keywords replace the record's fields
    assert qa.run(*exports, options=options, iou_threshold=0.7).settings["compare"]["iou_threshold"] == 0.7


def test_an_unknown_run_option_is_a_type_error_naming_it(tmp_path):
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'worker'; did you mean 'workers'\?"):
        qa.run(*_pair(tmp_path), worker=2)
    with pytest.raises(TypeError, match="qa.RunOptions"):
        qa.run(*_pair(tmp_path), options={"workers": 2})


def test_stored_settings_come_from_the_options():
    options = qa.RunOptions(max_pixels=1000, manifest="m.toml", instances="components", gate="default",
                            baseline="latest")
    assert options.settings() == {"max_pixels": 1000, "instances": "components", "manifest": "m.toml"}
    assert options.gate_settings() == {"gate": "default", "baseline": "latest", "max_drop": None}
    assert qa.RunOptions().settings() == {"max_pixels": 100_000_000} and qa.RunOptions().gate_settings() == {}


def test_run_fields_are_typed():
    import dataclasses

    from qa.model import Run

    types = {f.name: f.type for f in dataclasses.fields(Run)}
    assert types["comparison"] == "Comparison | None" and types["violations"] == "Sequence[Finding]"
    assert all(t not in ("object", "Any") for t in types.values())
    assert qa.pipeline.Run is Run  # still importable from the pipeline


def test_score_union_keeps_each_key_once_and_shares_the_text_columns():
    """The run's scores are the stages' score frames one after the other, a (scope, key, metric) once (its
    first row), as concat + drop_duplicates gives them; without a repeated key the text columns are the
    frames' own Arrow chunks (the analytics' scores and the run's are not held twice)."""
    import pandas as pd

    from qa.pipeline import _union

    def frame(scopes, values):
        return pd.DataFrame({"scope": pd.array(scopes, dtype="str"),
                             "key": pd.array(["", "a|b"][:len(scopes)], dtype="str"),
                             "metric": pd.array(["pq"] * len(scopes), dtype="str"), "value": values,
                             "n": list(range(len(scopes)))})

    first, second = frame(["batch", "annotator_pair"], [0.5, 0.25]), frame(["image", "annotator_pair"], [0.1, 0.9])
    for frames in ((first, second), (first, second.iloc[:1]), (first.iloc[:0], second)):
        expected = pd.concat(frames, ignore_index=True).drop_duplicates(["scope", "key", "metric"]) \
            .reset_index(drop=True)
        pd.testing.assert_frame_equal(_union(*frames), expected, check_exact=True)
    assert _union(first, second)["value"].tolist() == [0.5, 0.25, 0.1]  # the first row of a repeated key
    shared = _union(first, second.iloc[:1])["key"].array._pa_array
    assert shared.num_chunks == 2 and shared.chunk(0).buffers()[2].address == \
        first["key"].array._pa_array.chunk(0).buffers()[2].address
