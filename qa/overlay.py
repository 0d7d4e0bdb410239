"""Overlay pictures for the report: each annotator's outlines in its own colour, disagreement tinted.

Everything is drawn at thumbnail resolution with numpy (nearest-neighbour sampling of each object's
crop, outlines as mask minus its 4-neighbour erosion), so hundreds of images render in seconds and the
report stays small.
"""

from __future__ import annotations

import base64
import io
from typing import Iterable, Sequence

import numpy as np

# Okabe-Ito: distinguishable for the common colour-vision deficiencies. Magenta is kept for disagreement.
ANNOTATOR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 114, 178), (230, 159, 0), (0, 158, 115), (240, 228, 66),
    (86, 180, 233), (213, 94, 0), (255, 255, 255), (0, 0, 0),
)
DISAGREEMENT_COLOUR = (204, 0, 204)


def annotator_colour(index: int) -> tuple[int, int, int]:
    """The colour of the ``index``-th annotator (cycling after eight)."""
    return ANNOTATOR_COLOURS[index % len(ANNOTATOR_COLOURS)]


def hex_colour(rgb: Sequence[int]) -> str:
    """``(0, 114, 178)`` -> ``'#0072b2'``."""
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


def thumbnail_shape(height: int, width: int, max_side: int) -> tuple[int, int, float]:
    """Canvas size for an image and the scale factor (never above 1)."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale)), scale


def _sample_crop(crop: np.ndarray, offset: tuple[int, int], scale: float, canvas: tuple[int, int]):
    """Nearest-neighbour sample of a full-resolution crop onto the canvas; returns (mask, (r0, c0))."""
    x0, y0 = offset
    h, w = crop.shape
    if h == 0 or w == 0:
        return np.zeros((0, 0), bool), (0, 0)
    r0 = int(np.floor(y0 * scale))
    c0 = int(np.floor(x0 * scale))
    r1 = min(canvas[0], int(np.ceil((y0 + h) * scale)))
    c1 = min(canvas[1], int(np.ceil((x0 + w) * scale)))
    rows = np.clip(((np.arange(r0, r1) + 0.5) / scale).astype(np.int64) - y0, 0, h - 1)
    cols = np.clip(((np.arange(c0, c1) + 0.5) / scale).astype(np.int64) - x0, 0, w - 1)
    return crop[np.ix_(rows, cols)].astype(bool), (r0, c0)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the crop edge counts as outside)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def render_overlay(height: int, width: int,
                   crops_by_annotator: Sequence[Iterable[tuple[np.ndarray, tuple[int, int]]]],
                   *, background: np.ndarray | None = None, max_side: int = 384) -> np.ndarray:
    """Draw one image's overlay.

    Parameters
    ----------
    height, width : int
        The image's size in pixels.
    crops_by_annotator : sequence of iterables of (crop, (x0, y0))
        For each annotator in order, its objects as uint8/bool crops and their offsets in the image.
    background : ndarray, optional
        The image itself (``(H, W)`` or ``(H, W, 3)`` uint8); a dark grey canvas when None.
    max_side : int, default 384
        The longest side of the result, in pixels.

    Returns
    -------
    ndarray
        ``(h, w, 3)`` uint8 RGB: the dimmed image, pixels labelled by some annotators but not all tinted
        magenta, and each annotator's outlines in :func:`annotator_colour`.
    """
    rows, cols, scale = thumbnail_shape(height, width, max_side)
    if background is not None:
        from PIL import Image as PILImage

        bg = PILImage.fromarray(np.asarray(background, dtype=np.uint8)).convert("RGB").resize((cols, rows))
        canvas = (np.asarray(bg, dtype=np.float32) * 0.55 + 20).astype(np.float32)
    else:
        canvas = np.full((rows, cols, 3), 48, np.float32)
    sampled = [[_sample_crop(np.asarray(c), off, scale, (rows, cols)) for c, off in crops]
               for crops in crops_by_annotator]
    n = len(sampled)
    if n > 1:
        votes = np.zeros((rows, cols), np.int16)
        for objects in sampled:
            union = np.zeros((rows, cols), bool)
            for mask, (r0, c0) in objects:
                union[r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]] |= mask
            votes += union
        disagree = (votes > 0) & (votes < n)
        canvas[disagree] = canvas[disagree] * 0.45 + np.array(DISAGREEMENT_COLOUR, np.float32) * 0.55
    for index, objects in enumerate(sampled):
        colour = np.array(annotator_colour(index), np.float32)
        for mask, (r0, c0) in objects:
            edge = _outline(mask)
            region = canvas[r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]]
            region[edge] = colour
    return np.clip(canvas, 0, 255).astype(np.uint8)


def encode_image(rgb: np.ndarray, *, fmt: str = "webp", quality: int = 70) -> bytes:
    """Encode an RGB array as WebP (default), PNG or JPEG bytes."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    image = PILImage.fromarray(rgb)
    if fmt == "webp":
        image.save(buffer, "WEBP", quality=quality, method=4)
    elif fmt == "png":
        image.save(buffer, "PNG", optimize=True)
    elif fmt == "jpeg":
        image.save(buffer, "JPEG", quality=quality)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buffer.getvalue()


def data_uri(payload: bytes, fmt: str = "webp") -> str:
    """A ``data:`` URI for an encoded image, so the report needs no other file."""
    return f"data:image/{fmt};base64," + base64.b64encode(payload).decode("ascii")
