"""Checking a batch chunk by chunk of images, in this process or in workers, finds what one pass over the
whole batch finds."""

from dataclasses import replace

import pytest

import qa
from qa.rules import check as check_module
from qa.engine._pool import batch_chunks
from qa.rules.check import _check_chunk, check, sort_findings
from qa.rules.packs import read

FAULTS = ["*:jitter", "alice:drop_occluded", "bob:zorder", "carol:rule_faults"]


@pytest.fixture(scope="module")
def synth_batches(tmp_path_factory):
    from qa.synth import synthesize

    out = tmp_path_factory.mktemp("chunks")
    synthesize(out, images=6, size=(128, 192), annotators=3, seed=4, workers=1, formats=("coco", "coco_panoptic", "cvat"),
               faults=FAULTS)
    return {"coco": qa.load(manifest=out / "batch.toml"), "cvat": qa.load(manifest=out / "batch_cvat.toml"),
            "panoptic": qa.load(manifest=out / "batch_panoptic.toml")}


def _rows(findings):
    return [(f.code, f.annotator, f.image, f.source, f.value, f.limit, f.message) for f in findings]


@pytest.mark.parametrize("form", ["coco", "cvat", "panoptic"])
def test_findings_do_not_depend_on_chunks_or_workers(synth_batches, form, monkeypatch, tmp_path):
    batch = synth_batches[form]
    pack = read("default")
    if form == "panoptic":
        # nothing in the default pack fires on clean segments: leave one segment of each of alice's
        # images out of her list, so its pixels are unlabelled, and count every unlabelled pixel
        alice = batch.exports["alice"]
        first = {o.image: id(o) for o in reversed(alice.objects)}
        kept = [o for o in alice.objects if id(o) != first[o.image]]
        batch = replace(batch, exports={**batch.exports, "alice": replace(alice, objects=kept)})
        pack_file = tmp_path / "void.toml"
        pack_file.write_text('name = "void"\nextends = "default"\n[params.FMT104]\nmax_unlabelled_share = 0.0\n')
        pack = read(pack_file)
    whole, images = _check_chunk(batch, pack)  # every image in one chunk: the rules over the whole batch
    assert images == len(batch.images) == 6
    expected = _rows(sort_findings(whole, batch.annotators))
    assert expected, "the planted faults give findings to compare"
    monkeypatch.setattr(check_module, "CHUNK_PIXELS", 1)  # one image per chunk
    assert _rows(check(batch, pack, workers=1)) == expected
    monkeypatch.undo()
    assert _rows(check(batch, pack, workers=2)) == expected


def test_batch_chunks_narrow_every_export_and_keep_drawing_order(synth_batches):
    batch = synth_batches["panoptic"]
    keys = list(batch.images)
    parts = list(batch_chunks(batch, [keys[:2], keys[2:3]]))
    assert [list(p.images) for p in parts] == [keys[:2], keys[2:3]]
    for part, wanted in zip(parts, [keys[:2], keys[2:3]]):
        assert part.annotators == batch.annotators and not part.findings
        assert set(part.coverage) == set(wanted)
        for name, export in part.exports.items():
            full = batch.exports[name]
            assert set(export.images) == set(export.id_maps) == set(wanted) & set(full.images)
            assert export.objects == [o for o in full.objects if o.image in wanted]
            assert not export.findings


def test_progress_counts_images(synth_batches, monkeypatch):
    monkeypatch.setattr(check_module, "CHUNK_PIXELS", 2 * 128 * 192)  # two images per chunk
    seen = []
    check(synth_batches["coco"], "default", workers=1, progress=lambda *a: seen.append(a))
    assert seen == [("check", 0, 6), ("check", 2, 6), ("check", 4, 6), ("check", 6, 6)]
