"""``python -m qa`` and the ``qa`` console script."""

import os

ALLOCATOR_ENV = {"MIMALLOC_PURGE_DELAY": "0"}
"""Set for the ``qa`` process before pyarrow is loaded (a value already in the environment wins).

It matters when pyarrow allocates from mimalloc: ``import qa`` makes jemalloc Arrow's pool on Linux
(:mod:`qa._memory`), so this is for a user who chose mimalloc (``ARROW_DEFAULT_MEMORY_POOL=mimalloc``)
and for pyarrow builds without jemalloc. mimalloc keeps the pages it has freed for a while; a run reads
and writes many Parquet parts, and those pages stayed resident: 100 to 150 MB of the main process's peak
at 1,000 to 20,000 images, for no measurable time (``benchmarks/README.md``). Library callers of
:func:`qa.run` choose for their own process: the variable must be set before pyarrow is first imported."""

for _name, _value in ALLOCATOR_ENV.items():
    os.environ.setdefault(_name, _value)

from qa.cli import main  # noqa: E402  (after the environment above: the CLI may load pyarrow)


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
