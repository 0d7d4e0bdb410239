"""Copied work (AGR001): annotator pairs whose labels are identical on a share of their images."""

from __future__ import annotations

import pytest
from common import make_batch, make_object, square, write_json

import qa
from qa.analytics import analyse
from qa.analytics.copies import identical_images, identical_labels
from qa.engine.compare import compare_batch
from qa.rules import _registry


def _objects(annotator, shift_on=()):
    """Four images with a car and a person each; images in ``shift_on`` have the car one pixel off."""
    out = []
    for k in range(4):
        image = f"img{k}.png"
        dx = 1 if image in shift_on else 0
        out.append(make_object(square(10 + dx, 10, 30), annotator=annotator, image=image))
        out.append(make_object(square(50, 50, 20), annotator=annotator, image=image, category="person"))
    return out


def test_identical_images_counts_pairs_image_by_image():
    batch = make_batch({"alice": _objects("alice"), "bob": _objects("bob"),
                        "carol": _objects("carol", shift_on=("img0.png", "img1.png", "img2.png"))})
    table = identical_images(compare_batch(batch, workers=1)).set_index("pair")
    assert table.loc["alice|bob", ["images", "identical"]].tolist() == [4, 4]
    assert table.loc["alice|carol", ["images", "identical"]].tolist() == [4, 1]
    assert table.loc["bob|carol", "share"] == pytest.approx(0.25)


def test_a_pair_identical_on_a_share_of_images_is_one_finding():
    batch = make_batch({"alice": _objects("alice"), "bob": _objects("bob", shift_on=("img3.png",)),
                        "carol": _objects("carol", shift_on=("img0.png", "img1.png", "img2.png"))})
    comparison = compare_batch(batch, workers=1)
    [f] = identical_labels(comparison)
    assert (f.code, f.severity, f.annotator, f.value, f.limit) == ("AGR001", "warning", None, 0.75, 0.5)
    assert f.message.startswith("alice and bob have identical labels on 3 of the 4 images they labelled (75%")
    assert identical_labels(comparison, min_share=0.8) == []
    assert identical_labels(comparison, min_images=4) == []


def test_a_label_or_a_missing_object_breaks_identity():
    alice = _objects("alice")
    bob = _objects("bob")
    bob[1].category = "rider"  # img0: the person is a rider for bob
    del bob[2]                 # img1: bob has no car
    batch = make_batch({"alice": alice, "bob": bob})
    table = identical_images(compare_batch(batch, workers=1))
    assert table[["images", "identical"]].values.tolist() == [[4, 2]]


def test_analyse_follows_the_packs_selection_parameters_and_severity(tmp_path):
    batch = make_batch({"alice": _objects("alice"), "bob": _objects("bob")})
    comparison = compare_batch(batch, workers=1)
    kwargs = dict(alpha=False, consensus=False)
    [f] = analyse(batch, comparison, **kwargs).findings
    assert f.code == "AGR001"
    assert analyse(batch, comparison, pack=None, **kwargs).findings == []
    pack = tmp_path / "pack.toml"
    pack.write_text('extends = "default"\n[rules]\nignore = ["AGR001"]\n')
    assert analyse(batch, comparison, pack=pack, **kwargs).findings == []
    pack.write_text('extends = "default"\n[params.AGR001]\nmin_images = 5\n')
    assert analyse(batch, comparison, pack=pack, **kwargs).findings == []
    pack.write_text('extends = "default"\n[severity]\nAGR001 = "error"\n')
    assert [f.severity for f in analyse(batch, comparison, pack=pack, **kwargs).findings] == ["error"]


def test_the_code_is_documented_with_its_parameters():
    r = _registry.get("AGR001")
    assert (r.name, r.family, r.severity, r.level) == ("identical-labels", "agreement", "warning", "run")
    assert dict(r.params) == {"min_share": 0.5, "min_images": 3}


def test_qa_run_reports_it_stores_it_and_a_gate_on_warnings_sees_it(tmp_path):
    doc = {"images": [{"id": k, "file_name": f"{k}.png", "width": 60, "height": 60} for k in range(1, 4)],
           "categories": [{"id": 1, "name": "car"}],
           "annotations": [{"id": k, "image_id": k, "category_id": 1, "segmentation": [[5, 5, 40, 5, 40, 30, 5, 30]]}
                           for k in range(1, 4)]}
    a = write_json(tmp_path / "a.json", doc)
    b = write_json(tmp_path / "b.json", doc)
    db = tmp_path / "qa.duckdb"
    run = qa.run(f"alice={a}", f"bob={b}", db=db, workers=1)
    assert [f.code for f in run.findings] == ["AGR001"]
    assert any(f["code"] == "AGR001" for f in run.summary["findings"]) and run.summary["warnings"] == 1
    with qa.store.open(db) as s:
        assert s.findings(run.run_id)["code"].tolist() == ["AGR001"]


@pytest.mark.shared_data
def test_bubil_person2_amira_and_imagej_are_pixel_identical(bubil_experts):
    batch, comparison = bubil_experts
    table = identical_images(comparison)
    copies = table[table["identical"] > 0]
    assert copies["pair"].tolist() == ["experts/Person2_Amira|experts/Person2_ImageJ"]
    assert copies[["images", "identical"]].values.tolist() == [[35, 35]]
    [f] = identical_labels(comparison)
    assert "experts/Person2_Amira and experts/Person2_ImageJ have identical labels on 35 of the 35" in f.message


def _identical_by_groupby(comparison):
    """The definition, grouped on the text of every row (the figures :func:`identical_images` must equal)."""
    import numpy as np
    import pandas as pd

    op = comparison.object_pairs
    op = op[op["status"].astype(str) != "ignored"]
    same = ((op["status"].astype(str) == "matched") & ~op["label_disagreement"].astype(bool)
            & (op["iou"].fillna(0) >= 1.0 - 1e-12)).to_numpy()
    frame = pd.DataFrame({"pair": op["pair"].astype(str).to_numpy(), "image": op["image"].astype(str).to_numpy(),
                          "annotator_a": op["annotator_a"].astype(str).to_numpy(),
                          "annotator_b": op["annotator_b"].astype(str).to_numpy(), "same": same})
    per_image = frame.groupby(["pair", "image"], sort=True).agg(
        annotator_a=("annotator_a", "first"), annotator_b=("annotator_b", "first"), same=("same", "all"))
    out = per_image.groupby(level="pair", sort=True).agg(
        annotator_a=("annotator_a", "first"), annotator_b=("annotator_b", "first"),
        images=("same", "size"), identical=("same", "sum")).reset_index()
    out["images"] = out["images"].astype(np.int64)
    out["identical"] = out["identical"].astype(np.int64)
    out["share"] = out["identical"] / out["images"]
    return out


def test_identical_images_equal_the_group_by_definition_on_a_synth_batch(tmp_path):
    import json

    import pandas as pd

    from qa.synth import synthesize

    synthesize(tmp_path / "batch", images=8, size=(120, 200), annotators=3, seed=3, workers=1)
    coco = tmp_path / "batch" / "coco"
    copied = json.loads((coco / "alice.json").read_text())
    for ann in copied["annotations"]:  # alice's work, handed in again with images 1 to 3 moved a pixel
        if ann["image_id"] in (1, 2, 3) and isinstance(ann["segmentation"], list):
            ann["segmentation"] = [[v + 1 for v in poly] for poly in ann["segmentation"]]
    write_json(coco / "copy.json", copied)
    run = qa.run(*(f"{n}={coco / n}.json" for n in ("alice", "bob", "carol", "copy")), workers=1, store=False,
                 analytics=False)
    got = identical_images(run.comparison)
    row = got.set_index("pair").loc["alice|copy"]
    assert row["images"] == 8 and 0 < row["identical"] < 8  # the moved images differ, the others are alike
    pd.testing.assert_frame_equal(got, _identical_by_groupby(run.comparison), check_exact=True)
