"""annotation-qa: how much segmentation annotators agree, where and why they disagree.

The public API is small: :func:`load` reads and aligns several annotators' exports into a
:class:`~qa.model.Batch`, :func:`run` runs every stage on it, and :func:`decode` turns an object into a
mask. Nothing heavy is imported until a function needs it, so ``import qa`` stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "run", "analyse", "decode", "open", "metrics", "Run", "RunOptions", "QAError",
           "InputError", "ConfigError", "StoreError", "WorkerError"]

from qa._memory import prefer_jemalloc
from qa.errors import ConfigError, InputError, QAError, StoreError, WorkerError

prefer_jemalloc()  # before anything imports pyarrow, which reads its allocator's name once (qa._memory)


def load(*exports, **kwargs):
    """Load and align exports into a Batch; see :func:`qa.pipeline.load`."""
    from qa.pipeline import load as _load

    return _load(*exports, **kwargs)


def run(*exports, options=None, **kwargs):
    """Run every stage on a batch; see :func:`qa.pipeline.run`. ``options`` is a :class:`RunOptions`, and
    every keyword one of its fields."""
    from qa.pipeline import run as _run

    return _run(*exports, options=options, **kwargs)


def analyse(run_or_batch, comparison=None, **kwargs):
    """Agreement analytics of a run (or a batch and its comparison); see :func:`qa.analytics.analyse`."""
    from qa.analytics import analyse as _analyse

    return _analyse(run_or_batch, comparison, **kwargs)


def open(path=None, **kwargs):
    """Open the run store (read-only by default); see :func:`qa.store.open`."""
    from qa.store import open as _open

    return _open(path, **kwargs)


def decode(obj, batch, *, crop: bool = False):
    """Decode an object of ``batch`` to a uint8 mask.

    Parameters
    ----------
    obj : Object
        An object of ``batch``.
    batch : Batch
        The batch it belongs to (for the image size and, for panoptic segments, the id map).
    crop : bool, default False
        Return the mask inside its tight bbox, with the crop's ``(x0, y0)`` offset, instead of the
        full image.

    Returns
    -------
    ndarray or (ndarray, (int, int))
        The ``(height, width)`` mask, or the crop and its offset when ``crop`` is true.
    """
    from qa.engine._masks import decode_crop, decode_full, object_rle

    export = batch.exports[obj.annotator]
    image = export.images[obj.image]
    id_map = None
    if obj.kind == "segment":
        from qa.formats.coco_panoptic import read_id_map
        from qa.model import Limits

        id_map = read_id_map(export.id_maps[obj.image], Limits(max_pixels=image.width * image.height))
    rle = object_rle(obj, image.height, image.width, id_map)
    return decode_crop(rle) if crop else decode_full(rle)


def __getattr__(name):
    # ``qa.metrics`` on first use, so ``import qa`` does not load numba.
    if name == "metrics":
        import importlib

        return importlib.import_module("qa.metrics")
    if name in ("Run", "RunOptions"):  # the records of qa.model, which imports numpy
        from qa import model

        return getattr(model, name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
