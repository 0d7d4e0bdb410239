"""Binary mask folders (qa.formats.binary_masks): threshold, polarity, instances, depths, findings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from reference import coco_decode

import qa
from qa.errors import ConfigError
from qa.formats import load

H, W = 30, 40


def disc(cx=20, cy=15, r=8) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def save(array: np.ndarray, path: Path, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(array, mode).save(path) if mode else PILImage.fromarray(array).save(path)
    return path


def white_on_black(mask, scale=255, dtype=np.uint8):
    return np.where(mask, scale, 0).astype(dtype)


def only(exports):
    (export,) = exports
    return export


def decoded(obj, export):
    return coco_decode(obj.rle).astype(bool)


def test_white_foreground_is_sniffed_and_read(tmp_path):
    for k in range(3):
        save(white_on_black(disc(cx=10 + 5 * k)), tmp_path / "m" / f"img_{k}.png")
    export = only(load(tmp_path / "m", "a"))
    assert export.format == "binary_masks"
    assert [o.image for o in export.objects] == ["img_0", "img_1", "img_2"]
    for k, obj in enumerate(export.objects):
        np.testing.assert_array_equal(decoded(obj, export), disc(cx=10 + 5 * k))
        assert obj.category == "foreground" and obj.area == float(disc(cx=10 + 5 * k).sum())
    (f,) = export.findings
    assert f.code == "FMT021" and f.severity == "info" and "taken as white" in f.message


def test_black_foreground_sniffed_from_the_border(tmp_path):
    save(white_on_black(~disc()), tmp_path / "m" / "a.png")
    export = only(load(tmp_path / "m", "a"))
    np.testing.assert_array_equal(decoded(export.objects[0], export), disc())
    assert "taken as black" in export.findings[0].message


def test_polarity_option_overrides_sniffing(tmp_path):
    save(white_on_black(~disc()), tmp_path / "m" / "a.png")
    export = only(load(tmp_path / "m", "a", format="binary_masks", options={"foreground": "white"}))
    np.testing.assert_array_equal(decoded(export.objects[0], export), ~disc())  # read as told
    (f,) = export.findings  # but the white side covers the border and most of the image
    assert (f.code, f.severity) == ("FMT022", "warning") and "set foreground = 'black'" in f.message


def test_a_forced_polarity_that_fits_is_not_doubted(tmp_path):
    save(white_on_black(disc()), tmp_path / "m" / "a.png")
    export = only(load(tmp_path / "m", "a", format="binary_masks", options={"foreground": "white"}))
    np.testing.assert_array_equal(decoded(export.objects[0], export), disc())
    assert not export.findings


def test_ambiguous_border_is_a_warning_and_white_is_taken(tmp_path):
    half = np.zeros((H, W), bool)
    half[:, : W // 2] = True
    save(white_on_black(half), tmp_path / "m" / "a.png")
    export = only(load(tmp_path / "m", "a", format="binary_masks"))
    (f,) = export.findings
    assert (f.code, f.severity) == ("FMT022", "warning") and "cannot tell the foreground colour" in f.message
    np.testing.assert_array_equal(decoded(export.objects[0], export), half)


@pytest.mark.parametrize("threshold, expected_levels", [(0.5, {128, 200, 255}), (0.8, {255}), (0.1, {40, 127, 128, 200, 255})])
def test_threshold_is_a_fraction_of_full_scale(tmp_path, threshold, expected_levels):
    levels = np.array([0, 40, 127, 128, 200, 255], np.uint8)
    grey = np.tile(np.repeat(levels, 5), (H, 1))[:, :W]
    grey = np.pad(grey, ((0, 0), (0, W - grey.shape[1])))
    save(grey, tmp_path / "m" / "a.png")
    export = only(load(tmp_path / "m", "a", format="binary_masks",
                       options={"threshold": threshold, "foreground": "white"}))
    np.testing.assert_array_equal(decoded(export.objects[0], export), np.isin(grey, list(expected_levels)))


@pytest.mark.parametrize("kind", ["1bit", "L", "16bit", "RGB", "P", "LA"])
def test_every_png_kind_reads_alike(tmp_path, kind):
    mask = disc()
    path = tmp_path / "m" / "a.png"
    if kind == "1bit":
        save(mask, path)  # Pillow writes a bool array as a 1-bit PNG
    elif kind == "L":
        save(white_on_black(mask), path)
    elif kind == "16bit":
        save(white_on_black(mask, 65535, np.uint16), path)
    elif kind == "RGB":
        save(np.dstack([white_on_black(mask)] * 3), path)
    elif kind == "P":
        image = PILImage.fromarray(mask.astype(np.uint8), "P")
        image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        path.parent.mkdir(parents=True)
        image.save(path)
    elif kind == "LA":
        save(np.dstack([white_on_black(mask), np.full((H, W), 255, np.uint8)]), path, "LA")
    export = only(load(tmp_path / "m", "a", format="binary_masks", options={"foreground": "white"}))
    np.testing.assert_array_equal(decoded(export.objects[0], export), mask)


def test_transparent_pixels_are_background(tmp_path):
    rgba = np.full((H, W, 4), 255, np.uint8)
    rgba[disc()] = (0, 0, 0, 255)  # black foreground on white...
    rgba[:, :15, 3] = 0  # ...but the left strip is transparent, black or white
    save(rgba, tmp_path / "m" / "a.png", "RGBA")
    export = only(load(tmp_path / "m", "a", format="binary_masks", options={"foreground": "black"}))
    left_out = np.arange(W)[None, :] < 15
    np.testing.assert_array_equal(decoded(export.objects[0], export), disc() & ~left_out)


def test_instances_from_file_names(tmp_path):
    save(white_on_black(disc(cx=10)), tmp_path / "m" / "img_001_obj1.png")
    save(white_on_black(disc(cx=28)), tmp_path / "m" / "img_001_obj2.png")
    save(white_on_black(disc()), tmp_path / "m" / "img_002.png")
    export = only(load(tmp_path / "m", "a", format="binary_masks", options={"foreground": "white"}))
    assert set(export.images) == {"img_001", "img_002"}
    assert [(o.image, o.source.id) for o in export.objects] == [("img_001", 1), ("img_001", 2), ("img_002", None)]


def test_instance_pattern_with_categories(tmp_path):
    save(white_on_black(disc(cx=10)), tmp_path / "m" / "a-car-1.png")
    save(white_on_black(disc(cx=28)), tmp_path / "m" / "a-person-1.png")
    pattern = r"(?P<image>[^-]+)-(?P<category>[a-z]+)-(?P<instance>\d+)"
    export = only(load(tmp_path / "m", "a", format="binary_masks",
                       options={"instance_pattern": pattern, "foreground": "white"}))
    assert [(o.image, o.category) for o in export.objects] == [("a", "car"), ("a", "person")]
    assert set(export.categories) == {"car", "person"}


def test_instance_of_another_size_is_reported(tmp_path):
    save(white_on_black(disc()), tmp_path / "m" / "img_obj1.png")
    save(white_on_black(disc())[:, :30], tmp_path / "m" / "img_obj2.png")
    export = only(load(tmp_path / "m", "a", format="binary_masks", options={"foreground": "white"}))
    (f,) = export.findings
    assert f.code == "FMT003" and f.message.startswith("mask is 30x30 but img_obj1.png of the same image is 40x30")
    assert len(export.objects) == 1


def test_empty_mask_keeps_the_image_without_objects(tmp_path):
    save(np.zeros((H, W), np.uint8), tmp_path / "m" / "empty.png")
    save(white_on_black(disc()), tmp_path / "m" / "full.png")
    export = only(load(tmp_path / "m", "a", format="binary_masks", options={"foreground": "white"}))
    assert set(export.images) == {"empty", "full"} and [o.image for o in export.objects] == ["full"]


def test_bit_depth_option_reports_the_other_depth(tmp_path):
    save(white_on_black(disc()), tmp_path / "m" / "a.png")
    save(white_on_black(disc(), 65535, np.uint16), tmp_path / "m" / "b.png")
    export = only(load(tmp_path / "m", "a", format="binary_masks",
                       options={"bit_depth": 8, "foreground": "white"}))
    (f,) = export.findings
    assert f.code == "FMT020" and f.image == "b" and "16-bit PNG where the export's masks are 8-bit" in f.message


def test_decode_through_the_batch(tmp_path):
    save(white_on_black(disc()), tmp_path / "a" / "x.png")
    save(white_on_black(disc(cx=22)), tmp_path / "b" / "X.PNG")
    batch = qa.load(f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}")
    assert batch.coverage == {"x": ("a", "b")}
    (obj,) = batch.objects("b", "x")
    np.testing.assert_array_equal(qa.decode(obj, batch).astype(bool), disc(cx=22))
    crop, (x0, y0) = qa.decode(obj, batch, crop=True)
    assert (x0, y0) == (14, 7) and crop.shape == (17, 17)


@pytest.mark.parametrize("options, message", [
    ({"foreground": "dark"}, "'foreground' must be 'white', 'black' or 'auto'"),
    ({"threshold": 128}, "'threshold' must be a number between 0 and 1"),
    ({"instance_pattern": "("}, "not a valid regular expression"),
    ({"instance_pattern": r"(?P<img>.+)_(?P<instance>\d+)"}, "needs a group named 'image'"),
    ({"bit_depth": 12}, "'bit_depth' must be 8 or 16"),
    ({"category": ""}, "'category' must not be empty"),
    ({"void_ids": [0]}, "unknown option 'void_ids' for format binary_masks"),
])
def test_bad_options_are_config_errors(tmp_path, options, message):
    save(white_on_black(disc()), tmp_path / "m" / "a.png")
    with pytest.raises(ConfigError, match=message) as info:
        load(tmp_path / "m", "a", format="binary_masks", options=options)
    assert str(info.value).startswith(str(tmp_path / "m"))
