"""The run's one pass over the images (qa/task.py): every per-image figure from one decode of each image
equals what the stage functions compute on their own (each its own pass and its own decode), to the bit,
whatever the chunks and the number of workers."""

from __future__ import annotations

import pandas as pd
import pytest
from common import REAL_BATCHES

import qa
from qa.analytics.alpha import pixel_alpha
from qa.analytics.consensus import build_consensus
from qa.engine import _pool
from qa.engine.compare import compare_batch
from qa.engine.semantic import compare_semantic, is_semantic
from qa.rules.check import check
from qa.rules.packs import read


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from qa.synth import synthesize

    folder = tmp_path_factory.mktemp("task") / "batch"
    synthesize(folder, images=10, size=(128, 256), seed=11, workers=1,
               formats=("coco", "coco_panoptic", "cvat", "labelmap"))
    return folder


def _frames_equal(a, b, what):
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True, obj=what)


def _stage_by_stage(batch, pack):
    """Each stage's public function on its own, in this process: the reference."""
    comparison = compare_batch(batch, workers=1)
    out = {"comparison": comparison, "violations": check(batch, pack, workers=1), "alpha": pixel_alpha(batch, workers=1)}
    out["semantic"] = compare_semantic(batch, workers=1) if is_semantic(batch) else None
    out["consensus"] = build_consensus(batch, comparison, workers=1) if len(batch.annotators) >= 3 else None
    return out


def _assert_run_equals_stages(run, ref):
    c, r = run.comparison, ref["comparison"]
    for name in ("object_pairs", "image_pairs", "scores", "category_image_iou"):
        _frames_equal(getattr(c, name), getattr(r, name), name)
    assert c.settings == r.settings
    assert list(map(repr, run.violations)) == list(map(repr, ref["violations"]))  # repr: NaN values compare equal
    if ref["semantic"] is not None:
        for name in ("classes", "interfaces", "scores"):
            _frames_equal(getattr(run.semantic, name), getattr(ref["semantic"], name), f"semantic {name}")
        assert run.semantic.settings == ref["semantic"].settings
    else:
        assert run.semantic is None
    alpha = ref["alpha"]
    _frames_equal(run.analytics.alpha, alpha.batch, "alpha")
    _frames_equal(run.analytics.images[["image", "alpha"]], alpha.images[["image", "alpha"]], "image alpha")
    if ref["consensus"] is not None:
        for name in ("clusters", "objects", "annotators", "scores"):
            _frames_equal(getattr(run.analytics.consensus, name), getattr(ref["consensus"], name), f"consensus {name}")
        assert run.analytics.consensus.masks == ref["consensus"].masks
        assert run.analytics.consensus.summary == ref["consensus"].summary
    else:
        assert run.analytics.consensus is None


@pytest.mark.parametrize("manifest", ["batch.toml", "batch_cvat.toml", "batch_panoptic.toml", "batch_labelmap.toml"])
def test_one_pass_equals_the_stages_on_synth(manifest, synth, monkeypatch):
    batch = qa.load(manifest=synth / manifest)
    ref = _stage_by_stage(batch, read("default"))
    assert len(ref["comparison"].object_pairs) > 50
    assert ref["violations"] or manifest in ("batch_panoptic.toml", "batch_labelmap.toml")  # faults: polygons
    for chunk_max, workers in ((16, 1), (1, 1), (3, 2)):  # one chunk; one image per chunk; chunks of 3 on a pool
        monkeypatch.setattr(_pool, "CHUNK_MAX", chunk_max)
        run = qa.run(manifest=synth / manifest, workers=workers, store=False)
        _assert_run_equals_stages(run, ref)


def test_one_pass_equals_the_stages_with_components(synth):
    from qa.engine.semantic import components_as_instances

    batch = components_as_instances(qa.load(manifest=synth / "batch_labelmap.toml"))
    run = qa.run(manifest=synth / "batch_labelmap.toml", workers=1, store=False, instances="components")
    _assert_run_equals_stages(run, _stage_by_stage(batch, read("default")))


REAL = REAL_BATCHES


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_one_pass_equals_the_stages_on_real_data(name, shared_data, monkeypatch):
    exports = REAL[name](shared_data)
    ref = _stage_by_stage(qa.load(*exports), read("default"))
    for chunk_max, workers in ((16, 1), (2, 2)):
        monkeypatch.setattr(_pool, "CHUNK_MAX", chunk_max)
        _assert_run_equals_stages(qa.run(*exports, workers=workers, store=False), ref)


def test_the_task_reads_only_its_chunk(synth):
    """A task loads its chunk and needs nothing else: run on a chunk whose objects are copies (as a
    streamed chunk reads them again in a worker), it gives the same rows."""
    import copy

    from qa.engine.chunks import InMemoryChunk, chunks_of
    from qa.task import run_chunk, task_options

    batch = qa.load(manifest=synth / "batch.toml")
    options = task_options(batch, pack=read("default"))
    keys = list(batch.images)[:3]
    chunk = next(chunks_of(batch, [keys]))
    copied = InMemoryChunk(chunk.keys, copy.deepcopy(chunk.batch))
    a, b = run_chunk(chunk, options), run_chunk(copied, options)
    for name in a["compare"]["obj"]:
        pd.testing.assert_series_equal(pd.Series(a["compare"]["obj"][name]), pd.Series(b["compare"]["obj"][name]))
    assert list(map(repr, a["findings"])) == list(map(repr, b["findings"]))
    assert [r for _k, _n, s in a["alpha"] for r in (s.n, s.diagonal)] == \
        [r for _k, _n, s in b["alpha"] for r in (s.n, s.diagonal)]


@pytest.mark.parametrize("pairs", ["reference", "all"])
def test_one_pass_with_a_reference_equals_the_stages(pairs, synth, monkeypatch):
    """With a reference, the pass compares the pairs of the reference plan (PQ with the reference as the
    ground truth) and builds no consensus of everyone; the comparison and the figures against the
    reference equal the comparison stage with the plan and the reference stage on its own."""
    from qa.engine.compare import PairPlan
    from qa.pipeline import reference_stage

    batch = qa.load(manifest=synth / "batch_panoptic.toml")
    gold = batch.annotators[0]
    batch.reference = gold
    plan = PairPlan({a: gold for a in batch.annotators if a != gold}, pairs=pairs)
    comparison = compare_batch(batch, workers=1, plan=plan)
    against = reference_stage(batch, comparison)
    assert comparison.settings["pq_form"] in ("reference", "mixed")
    for chunk_max, workers in ((16, 1), (3, 2)):
        monkeypatch.setattr(_pool, "CHUNK_MAX", chunk_max)
        run = qa.run(manifest=synth / "batch_panoptic.toml", workers=workers, store=False, reference=gold, pairs=pairs)
        for name in ("object_pairs", "image_pairs", "scores", "category_image_iou"):
            _frames_equal(getattr(run.comparison, name), getattr(comparison, name), name)
        assert run.comparison.settings == comparison.settings
        _frames_equal(run.reference.scores, against.scores, "reference scores")
        _frames_equal(run.reference.objects, against.objects, "reference objects")
        assert run.analytics.consensus is None


def test_the_consensus_of_the_others_is_the_same_on_every_pool(synth, monkeypatch):
    runs = []
    for chunk_max, workers in ((16, 1), (3, 2)):
        monkeypatch.setattr(_pool, "CHUNK_MAX", chunk_max)
        runs.append(qa.run(manifest=synth / "batch.toml", workers=workers, store=False, reference="consensus"))
    assert len(runs[0].reference.scores) > 20
    _frames_equal(runs[0].reference.scores, runs[1].reference.scores, "reference scores")
    _frames_equal(runs[0].scores, runs[1].scores, "scores")


def _stored_tables(db) -> dict:
    from qa.store import RUN_TABLES

    with qa.open(db) as s:
        run_id = s.runs()["run_id"].iloc[0]
        return {name: s.sql(f"SELECT * EXCLUDE (run_id) FROM {name} WHERE run_id = ? ORDER BY ALL", [run_id])
                for name in RUN_TABLES if name != "runs"}


def _whole_load(monkeypatch):
    """qa.run reading the batch whole instead of indexing it (the run before streamed exports)."""
    from qa import pipeline

    load = pipeline._load
    monkeypatch.setattr(pipeline, "_load", lambda *a, **k: load(*a, **{**k, "streamed": False}))


@pytest.mark.parametrize("manifest,executor", [
    ("batch.toml", {"workers": 2}), ("batch_cvat.toml", {"workers": 2}), ("batch_panoptic.toml", {"workers": 1}),
    ("batch.toml", {"executor": "local:2"})], ids=["coco-pool", "cvat-pool", "panoptic", "coco-dask"])
def test_an_indexed_run_stores_what_a_whole_load_stores(manifest, executor, synth, tmp_path, monkeypatch):
    """qa run sends each task the places of its images' objects (IndexedChunk) and the main process holds
    no polygon or RLE of the batch: the objects come back from the pass without their geometry; only the
    report's pictures read their images' objects again. Every stored table and the report's pictures
    equal those of a run on the batch loaded whole."""
    from qa.engine import chunks

    sent = []
    of = chunks.chunks_of

    def spy(batch, keys):
        for chunk in of(batch, keys):
            sent.append(type(chunk).__name__)
            yield chunk

    def refuse(batch):
        raise AssertionError("the batch was read whole")

    with monkeypatch.context() as m:
        m.setattr(chunks, "chunks_of", spy)
        m.setattr(chunks, "materialise", refuse)
        indexed = qa.run(manifest=synth / manifest, db=tmp_path / "indexed.duckdb", report=tmp_path / "i.html",
                         **executor)
    assert sent and set(sent) == {"IndexedChunk"}
    assert all(o.polygons is None and o.rle is None for e in indexed.batch.exports.values() for o in e.objects)
    with monkeypatch.context() as m:
        _whole_load(m)
        whole = qa.run(manifest=synth / manifest, db=tmp_path / "whole.duckdb", report=tmp_path / "w.html",
                       workers=1)
    assert whole.batch.index is None
    _frames_equal(indexed.scores, whole.scores, "scores")
    here, there = _stored_tables(tmp_path / "indexed.duckdb"), _stored_tables(tmp_path / "whole.duckdb")
    for name in here:
        _frames_equal(here[name], there[name], name)
    assert len(here["objects"]) > 100 and len(here["object_matches"]) > 100
    from qa.report import from_run

    a, b = from_run(indexed), from_run(whole)
    assert [g["uri"] for g in a.gallery] == [g["uri"] for g in b.gallery] and len(a.gallery) > 0


# --- the objects a streamed run keeps, packed -------------------------------------------------------------

def _objects(n, image="i"):
    from qa.model import Object, Source

    return [Object(annotator="a", image=f"{image}{k}", category=f"c{k % 3}", kind="polygon",
                   source=Source("a.json", k, 1000 + k), bbox=(k, k + 0.5, 2, 3), area=float(k),
                   attributes={"occluded": k % 2 == 0}) for k in range(n)]


def _fields(o):
    return (o.annotator, o.image, o.category, o.kind, o.source, o.polygons, o.rle, o.segment_id, o.iscrowd,
            o.bbox, o.area, o.attributes)


def test_objects_of_chunks_in_export_order_are_packed():
    from qa.model import objects_at
    from qa.task import PackedObjects, _ObjectParts

    objects = _objects(10)
    parts = _ObjectParts()
    for lo, hi in ((0, 4), (4, 4), (4, 9), (9, 10)):  # an empty chunk too
        parts.add(list(range(lo, hi)), objects[lo:hi])
    packed = parts.finish()
    assert isinstance(packed, PackedObjects) and len(packed) == 10
    assert [_fields(o) for o in packed] == [_fields(o) for o in objects]
    assert [_fields(packed[k]) for k in (0, 3, 4, 9, -1, -10)] == [_fields(objects[k]) for k in (0, 3, 4, 9, -1, -10)]
    assert [_fields(o) for o in packed[2:7:2]] == [_fields(o) for o in objects[2:7:2]]
    assert _fields(packed[__import__("numpy").int64(5)]) == _fields(objects[5])
    with pytest.raises(IndexError):
        packed[10]
    assert not PackedObjects([], []) and len(PackedObjects([], [])) == 0
    for key in {o.image for o in objects}:
        assert [_fields(o) for o in packed.of_image(key)] == [_fields(o) for o in objects if o.image == key]
    assert packed.of_image("no such image") == []
    at = [9, 0, 5, 4, 4, -1, 2]  # any order, repeats and negative indices: as a list would give them
    assert [_fields(o) for o in packed.take(at)] == [_fields(objects[k]) for k in at]
    assert [_fields(o) for o in objects_at(packed, at)] == [_fields(o) for o in objects_at(objects, at)]
    assert packed.take([]) == []
    with pytest.raises(IndexError):
        packed.take([3, 10])


def test_objects_and_sources_pickle_and_copy_to_equal_values():
    import copy
    import pickle

    import numpy as np

    from qa.model import Object, Source

    polygon = Object(annotator="a", image="i", category="car", kind="polygon", source=Source("a.json", 3, "7", "s"),
                     polygons=(np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 3.0]]),), iscrowd=True, bbox=(0, 0, 4, 3),
                     area=6.0, attributes={"occluded": True, "z_order": 2})
    mask = Object(annotator="b", image="j", category="road", kind="rle", source=Source("b.json", 0, None),
                  rle={"size": [2, 2], "counts": b"04"})
    for obj in (polygon, mask):
        for again in (pickle.loads(pickle.dumps(obj, protocol=p)) for p in range(2, pickle.HIGHEST_PROTOCOL + 1)):
            assert type(again) is Object and type(again.source) is Source
            assert _fields(again)[:5] == _fields(obj)[:5] and _fields(again)[6:] == _fields(obj)[6:]
            assert again.source.section == obj.source.section
            assert (again.polygons is None) == (obj.polygons is None)
            if obj.polygons is not None:
                assert all(np.array_equal(x, y) for x, y in zip(again.polygons, obj.polygons))
        shallow, deep = copy.copy(obj), copy.deepcopy(obj)
        assert shallow.attributes is obj.attributes and deep.attributes is not obj.attributes
        assert deep.attributes == obj.attributes and deep.source == obj.source


def test_objects_of_chunks_in_another_image_order_stay_packed_in_export_order():
    import pickle

    from qa.task import PackedObjects, _ObjectParts

    objects = _objects(8)
    parts = _ObjectParts()
    parts.add([0, 1, 2], objects[0:3])
    parts.add([6, 7], objects[6:8])
    parts.add([5, 3, 4], [objects[5], objects[3], objects[4]])  # an export that lists one image later, and
    out = parts.finish()                                       # a chunk's objects in another order
    assert isinstance(out, PackedObjects) and len(out) == 8
    assert [_fields(o) for o in out] == [_fields(o) for o in objects]
    assert [_fields(out[k]) for k in range(8)] == [_fields(o) for o in objects]
    assert [_fields(o) for o in out.take([7, 3, 0])] == [_fields(objects[k]) for k in (7, 3, 0)]
    for key in {o.image for o in objects}:
        assert [_fields(o) for o in out.of_image(key)] == [_fields(o) for o in objects if o.image == key]
    assert [_fields(o) for o in pickle.loads(pickle.dumps(out))] == [_fields(o) for o in objects]


def test_objects_of_chunks_that_interleave_in_the_export_are_a_list_in_export_order(monkeypatch):
    import qa.task
    from qa.task import PackedObjects, _ObjectParts

    objects = _objects(8)
    for many, kind in ((1000, PackedObjects), (2, list)):  # a few short runs stay packed, many do not
        monkeypatch.setattr(qa.task, "MANY_RUNS", many)
        parts = _ObjectParts()
        parts.add([0, 2, 4], [objects[0], objects[2], objects[4]])  # an export that does not list its
        parts.add([7, 1, 3], [objects[7], objects[1], objects[3]])  # objects image by image
        parts.add([5, 6], objects[5:7])
        out = parts.finish()
        assert isinstance(out, kind)
        assert [_fields(o) for o in out] == [_fields(o) for o in objects]


def test_a_streamed_run_keeps_its_objects_packed_and_equal_to_the_loaded_ones(tmp_path):
    import qa
    from qa.synth import synthesize
    from qa.task import PackedObjects

    synthesize(tmp_path / "batch", images=3, size=(160, 320), annotators=3, seed=2, workers=1)
    run = qa.run(manifest=tmp_path / "batch" / "batch.toml", workers=1, store=False)
    loaded = qa.load(manifest=tmp_path / "batch" / "batch.toml")
    for name, export in run.batch.exports.items():
        assert isinstance(export.objects, PackedObjects)
        whole = loaded.exports[name].objects
        assert len(export.objects) == len(whole) > 0
        for a, b in zip(export.objects, whole):
            assert _fields(a)[:5] == _fields(b)[:5] and _fields(a)[7:] == _fields(b)[7:]
            assert a.polygons is None and a.rle is None
    for key in loaded.images:  # one image's objects, read from the blocks that hold it
        assert [_fields(o)[:5] for o in run.batch.objects(image=key)] == \
            [_fields(o)[:5] for o in loaded.objects(image=key)]
        assert [_fields(o)[:5] for o in run.batch.objects(annotator=loaded.annotators[0], image=key)] == \
            [_fields(o)[:5] for o in loaded.objects(annotator=loaded.annotators[0], image=key)]


def test_a_streamed_run_keeps_packed_the_objects_of_an_export_whose_images_are_not_in_name_order(tmp_path):
    # the run goes through the images in name order; these exports list them (and their objects) in
    # another, so the chunks' objects come back out of export order
    import json

    import qa
    from qa.synth import synthesize
    from qa.task import PackedObjects

    synthesize(tmp_path / "batch", images=6, size=(96, 160), annotators=3, seed=4, workers=1)
    for path in sorted((tmp_path / "batch" / "coco").glob("*.json")):
        doc = json.loads(path.read_text())
        for k, image in enumerate(doc["images"]):
            image["file_name"] = f"{(5 * k) % 6}-{image['file_name']}"  # 0, 5, 4, 3, 2, 1
        path.write_text(json.dumps(doc))
    manifest = tmp_path / "batch" / "batch.toml"
    run = qa.run(manifest=manifest, workers=1, store=False)
    loaded = qa.load(manifest=manifest)
    assert list(run.batch.images) != [im for e in loaded.exports.values() for im in e.images][:6]
    for name, export in run.batch.exports.items():
        assert isinstance(export.objects, PackedObjects)
        assert [_fields(o)[:5] for o in export.objects] == [_fields(o)[:5] for o in loaded.exports[name].objects]
    for key in loaded.images:
        assert [_fields(o)[:5] for o in run.batch.objects(image=key)] == \
            [_fields(o)[:5] for o in loaded.objects(image=key)]


def test_objects_packed_into_a_file_read_and_pickle_as_the_objects(tmp_path):
    import pickle

    from qa.parts import run_folder
    from qa.pickled import FileBlocks, PackedObjects
    from qa.task import _ObjectParts

    objects = _objects(10)
    folder = run_folder(tmp_path)
    blocks = FileBlocks.create(folder.path / "objects" / "export-000.pickles", owner=folder)
    parts = _ObjectParts(blocks)
    for lo, hi in ((0, 4), (4, 4), (4, 9), (9, 10)):
        parts.add(list(range(lo, hi)), objects[lo:hi])
    packed = parts.finish()
    assert isinstance(packed, PackedObjects) and packed._blocks is blocks and len(blocks) == 3
    assert blocks.path.stat().st_size == sum(blocks.lengths)  # the blocks are in the file, not in memory
    assert [_fields(o) for o in packed] == [_fields(o) for o in objects]
    assert [_fields(o) for o in packed.take([9, 0, 5])] == [_fields(objects[k]) for k in (9, 0, 5)]
    key = objects[6].image
    assert [_fields(o) for o in packed.of_image(key)] == [_fields(o) for o in objects if o.image == key]
    again = pickle.loads(pickle.dumps(packed))  # a copy that needs no file
    assert isinstance(again._blocks, list)
    folder.cleanup()
    assert not blocks.path.exists()
    assert [_fields(o) for o in again] == [_fields(o) for o in objects]


def test_a_file_of_blocks_read_in_export_order_and_turned_back_into_objects_when_chunks_interleave(
        tmp_path, monkeypatch):
    import qa.task
    from qa.pickled import FileBlocks, PackedObjects
    from qa.task import _ObjectParts

    objects = _objects(8)
    parts = _ObjectParts(FileBlocks.create(tmp_path / "blocks"))
    parts.add([0, 1, 2], objects[0:3])
    parts.add([6, 7], objects[6:8])
    parts.add([3, 4, 5], objects[3:6])
    out = parts.finish()
    assert isinstance(out, PackedObjects) and [_fields(o) for o in out] == [_fields(o) for o in objects]
    monkeypatch.setattr(qa.task, "MANY_RUNS", 4)
    parts = _ObjectParts(FileBlocks.create(tmp_path / "more"))
    parts.add([0, 2, 4, 6], objects[0:8:2])
    parts.add([1, 3, 5, 7], objects[1:8:2])
    out = parts.finish()
    assert isinstance(out, list) and [_fields(o) for o in out] == [_fields(o) for o in objects]

