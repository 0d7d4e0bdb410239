"""A consensus written by ``qa consensus`` aligns, read back, with every input format it was built from;
an export that shares no image with the others is an ALN006 error, not a silent run of 0 images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

import qa
from common import run_cli, write_json
from qa.analytics.consensus import build_consensus

H, W = 32, 40


def _shapes():
    yy, xx = np.mgrid[:H, :W]
    first = ((xx - 12) ** 2 + (yy - 14) ** 2 <= 64)
    second = (np.abs(xx - 30) <= 5) & (np.abs(yy - 20) <= 6)
    return {"Seg_B01": first, "Seg_B02": second}


def _binary(folder):
    for name, mask in _shapes().items():
        folder.mkdir(parents=True, exist_ok=True)
        PILImage.fromarray(np.where(mask, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")  # black fg


def _labelmap(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, mask in _shapes().items():
        ids = np.where(mask, 2, 1).astype(np.uint8)
        image = PILImage.fromarray(ids, "P")
        image.putpalette([0, 0, 0, 128, 64, 128, 0, 0, 142] + [0] * 759)
        image.save(folder / f"{name}.png")


CLASSES = [{"id": 0, "name": "unlabeled", "void": True}, {"id": 1, "name": "road"},
           {"id": 2, "name": "car", "isthing": True}]


def _panoptic(folder):
    pngs = folder.with_suffix("")
    pngs.mkdir(parents=True, exist_ok=True)
    annotations, images = [], []
    for k, (name, mask) in enumerate(_shapes().items()):
        ids = np.where(mask, 5, 0).astype(np.uint8)
        PILImage.fromarray(np.stack([ids, ids * 0, ids * 0], axis=-1)).save(pngs / f"{name}.png")
        images.append({"id": k + 1, "file_name": f"{name}.jpg", "width": W, "height": H})
        annotations.append({"image_id": k + 1, "file_name": f"{name}.png", "segments_info": [
            {"id": 5, "category_id": 1, "iscrowd": 0, "area": int(mask.sum()), "bbox": [0, 0, 1, 1]}]})
    write_json(folder, {"images": images, "annotations": annotations,
                        "categories": [{"id": 1, "name": "cell", "isthing": 1}]})


def _coco(path):
    from qa.engine._masks import mask_to_rle

    images, annotations = [], []
    for k, (name, mask) in enumerate(_shapes().items()):
        images.append({"id": k + 1, "file_name": f"{name}.jpg", "width": W, "height": H})
        rle = mask_to_rle(mask.astype(np.uint8))
        annotations.append({"id": k + 1, "image_id": k + 1, "category_id": 1, "iscrowd": 0,
                            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                            "area": int(mask.sum()), "bbox": [0, 0, 1, 1]})
    write_json(path, {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cell"}]})


WRITERS = {"binary_masks": (_binary, ""), "labelmap": (_labelmap, ""), "coco_panoptic": (_panoptic, ".json"),
           "coco": (_coco, ".json")}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_consensus_aligns_with_the_format_it_was_built_from(tmp_path, fmt):
    write, suffix = WRITERS[fmt]
    paths = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}{suffix}"
        write(path)
        paths.append(path)
    options = {"classes": CLASSES} if fmt == "labelmap" else {}
    from qa.manifest import ExportSpec

    specs = [ExportSpec(annotator=n, path=p, format=fmt, options=options) for n, p in zip("abc", paths)]
    batch = qa.load(*specs)
    out = build_consensus(batch, workers=1).write_coco(tmp_path / "consensus.json")
    back = qa.load(ExportSpec(annotator="gold", path=paths[0], format=fmt, options=options), f"cons={out}")
    assert not [f for f in back.findings if f.code in ("ALN001", "ALN006")], [str(f) for f in back.findings]
    assert all(set(v) == {"gold", "cons"} for v in back.coverage.values()) and len(back.coverage) == 2
    run = qa.run(ExportSpec(annotator="gold", path=paths[0], format=fmt, options=options), f"cons={out}",
                 store=False, pack=None, workers=1, analytics=False)
    pair = run.comparison.scores.set_index(["scope", "metric"]).loc["annotator_pair"]
    assert pair.loc["images", "value"] == 2 and pair.loc["mask_iou_mean", "value"] == 1.0


def test_the_bubil_consensus_aligns_with_the_gold_masks(shared_data, tmp_path, capsys):
    """The issue's commands: a consensus of BU-BIL's experts (seg_B01.png) against GoldStandard (seg_b01)."""
    root = shared_data / "bu_bil_dataset1"
    experts = [f"p{k}={root / 'ExpertsAnnotations' / f'Person{k}_Amira'}" for k in (1, 2, 4)]
    out = tmp_path / "c.json"
    code, _, err = run_cli(["consensus", *experts, "--out", str(out), "--workers", "1"], capsys)
    assert code == 0, err
    code, text, err = run_cli(["run", f"gold={root / 'GoldStandard'}", f"vote={out}", "--no-store", "--no-report",
                               "--format", "json", "--workers", "1"], capsys)
    assert code == 0, err
    import json

    summary = json.loads(text)
    assert summary["pairs"][0]["images"] == 35 and summary["pairs"][0]["mask_iou_mean"] > 0.8
    assert "ALN006" not in summary["findings_by_code"]


def test_exports_that_share_no_image_are_an_error(tmp_path, capsys):
    _binary(tmp_path / "gold")
    _coco(tmp_path / "other.json")
    doc = (tmp_path / "other.json").read_text(encoding="utf-8").replace("Seg_B0", "frame_")
    (tmp_path / "other.json").write_text(doc, encoding="utf-8")
    code, text, err = run_cli(["run", f"gold={tmp_path / 'gold'}", f"x={tmp_path / 'other.json'}", "--no-store",
                               "--no-report"], capsys)
    assert code == 0, err
    assert "ALN006 gold shares no image with any other export, so nothing of it is compared; its image keys " \
           "look like 'seg_b01', the others' like 'frame_1.jpg'" in text
    assert "2 errors" in text
