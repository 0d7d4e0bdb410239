"""Exports of the same images at another resolution: scaled into the frame (declared, or detected from the
aspect ratio), or reported once per export with the sizes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

import qa
from common import write_json
from qa.formats._scale import nearest_indices, resample_mask, scale_rle


def _coco(path, size, polygons, *, scale=(1.0, 1.0), names=("a.jpg", "b.jpg")):
    w, h = size
    sx, sy = scale
    images = [{"id": k + 1, "file_name": n, "width": w, "height": h} for k, n in enumerate(names)]
    anns = []
    for k, n in enumerate(names):
        for poly in polygons:
            flat = [v * (sx if j % 2 == 0 else sy) for xy in poly for j, v in enumerate(xy)]
            anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": 1, "segmentation": [flat],
                         "iscrowd": 0, "area": 1.0, "bbox": [0, 0, 1, 1]})
    write_json(path, {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "box"}]})
    return path


POLYS = [[[10.0, 10.0], [70.0, 12.0], [66.0, 50.0], [14.0, 44.0]], [[100.0, 60.0], [150.0, 60.0], [125.0, 110.0]]]


def test_same_aspect_ratio_is_detected_and_polygons_scale_exactly(tmp_path):
    full = _coco(tmp_path / "full.json", (160, 120), POLYS)
    half = _coco(tmp_path / "half.json", (80, 60), POLYS, scale=(0.5, 0.5))
    run = qa.run(f"gold={full}", f"half={half}", reference="gold", store=False, pack=None, workers=1,
                 analytics=False)
    (finding,) = [f for f in run.batch.findings if f.code == "ALN008"]
    assert finding.severity == "warning" and finding.annotator == "half"
    assert "half labels 2 of 2 images at another size with the same aspect ratio" in finding.message
    assert "80x60 -> 160x120 (x2, y2; 2 images)" in finding.message
    assert not [f for f in run.batch.findings if f.code == "ALN002"]
    row = run.reference.annotators.set_index("annotator").loc["half"]
    assert row["images"] == 2 and row["matched"] == 4 and row["mask_iou_mean"] == 1.0
    assert run.batch.exports["half"].images["a.jpg"].scaled_from == (80, 60)


def test_an_uneven_resize_needs_declaring_and_is_reported_once_otherwise(tmp_path):
    full = _coco(tmp_path / "full.json", (4096, 2304), [[[800.0, 450.0], [2400.0, 500.0], [2000.0, 1800.0]]])
    small = _coco(tmp_path / "small.json", (512, 256), [[[800.0, 450.0], [2400.0, 500.0], [2000.0, 1800.0]]],
                  scale=(1 / 8, 1 / 9))
    batch = qa.load(f"cvat={full}", f"coco={small}")
    (finding,) = [f for f in batch.findings if f.code == "ALN002"]  # once per export, not per image
    assert "coco declares other sizes on 2 of 2 images" in finding.message
    assert "a.jpg 512x256 (frame 4096x2304)" in finding.message and "declare rescale" in finding.message
    assert batch.coverage["a.jpg"] == ("cvat",)
    run = qa.run(f"cvat={full}", f"coco={small}", reference="cvat", rescale=["coco"], store=False, pack=None,
                 workers=1, analytics=False)
    (declared,) = [f for f in run.batch.findings if f.code == "ALN007"]
    assert declared.severity == "info" and "512x256 -> 4096x2304 (x8, y9; 2 images)" in declared.message
    assert not [f for f in run.batch.findings if f.code == "ALN002"]
    row = run.reference.annotators.set_index("annotator").loc["coco"]
    assert row["matched"] == 2 and row["mask_iou_mean"] > 0.999


def test_the_manifest_declares_rescale(tmp_path):
    full = _coco(tmp_path / "full.json", (90, 60), POLYS[:1])
    small = _coco(tmp_path / "small.json", (30, 30), POLYS[:1], scale=(1 / 3, 0.5))
    manifest = tmp_path / "batch.toml"
    manifest.write_text('[[exports]]\nannotator = "gold"\npath = "full.json"\nrole = "reference"\n\n'
                        '[[exports]]\nannotator = "small"\npath = "small.json"\nrescale = true\n', encoding="utf-8")
    run = qa.run(manifest=manifest, store=False, pack=None, workers=1, analytics=False)
    assert run.settings["reference"] == "gold" and run.settings["rescaled"] == ["small"]
    assert run.reference.annotators.iloc[0]["matched"] == 2


def _naive_nearest(mask, height, width):
    h, w = mask.shape
    out = np.zeros((height, width), mask.dtype)
    for i in range(height):
        for j in range(width):
            out[i, j] = mask[min(h - 1, (2 * i + 1) * h // (2 * height)), min(w - 1, (2 * j + 1) * w // (2 * width))]
    return out


@pytest.mark.parametrize("target", [(60, 80), (15, 20), (45, 70), (31, 17)])
def test_mask_resampling_is_nearest_neighbour(target):
    rng = np.random.default_rng(5)
    mask = (rng.random((30, 40)) < 0.3).astype(np.uint8)
    np.testing.assert_array_equal(resample_mask(mask, *target), _naive_nearest(mask, *target))
    from qa.engine._masks import decode_full, mask_to_rle

    np.testing.assert_array_equal(decode_full(scale_rle(mask_to_rle(mask), *target)), _naive_nearest(mask, *target))


def test_upscaled_mask_outline_stays_within_half_a_source_pixel(tmp_path):
    """A disk drawn at a quarter of the resolution and scaled 4x: every pixel where it differs from the disk
    drawn at full resolution lies within 2 px (half a source pixel) of the full disk's outline along each
    axis (chessboard distance; up to 2 sqrt 2 px in Euclidean distance)."""
    from scipy import ndimage

    yy, xx = np.mgrid[:200, :240]
    full = ((xx - 120.0) ** 2 + (yy - 100.0) ** 2 <= 60.0 ** 2).astype(np.uint8)
    ys, xs = np.mgrid[:50, :60]
    quarter = (((xs + 0.5) * 4 - 120.0) ** 2 + ((ys + 0.5) * 4 - 100.0) ** 2 <= 60.0 ** 2).astype(np.uint8)
    up = resample_mask(quarter, 200, 240)
    differ = up != full
    inside = ndimage.distance_transform_cdt(full, metric="chessboard")
    outside = ndimage.distance_transform_cdt(1 - full, metric="chessboard")
    assert differ.any() and max(inside[differ].max(), outside[differ].max()) <= 2
    assert nearest_indices(8, 2).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_binary_masks_at_half_resolution_are_scaled(tmp_path):
    yy, xx = np.mgrid[:64, :80]
    disk = (xx - 40) ** 2 + (yy - 30) ** 2 <= 400
    for name, mask in (("gold", disk), ("half", disk[::2, ::2])):
        folder = tmp_path / name
        folder.mkdir()
        PILImage.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(folder / "cell.png")
    run = qa.run(f"gold={tmp_path / 'gold'}", f"half={tmp_path / 'half'}", reference="gold", store=False,
                 pack=None, workers=1, analytics=False)
    assert [f.code for f in run.batch.findings if f.code.startswith("ALN")] == ["ALN008"]
    assert 0.9 < run.reference.annotators.iloc[0]["mask_iou_mean"] < 1.0  # a 20 px disk sampled every 2 px
