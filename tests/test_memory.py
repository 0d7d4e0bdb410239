"""The run's memory (qa._memory): Arrow's pool is jemalloc when ``import qa`` comes first on Linux, in the main
process and in the run's workers (the user's ARROW_DEFAULT_MEMORY_POOL, or a pyarrow imported before, wins);
give_back returns glibc's free heap pages."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _jemalloc_built() -> bool:
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jemalloc is preferred on Linux"),
              pytest.mark.skipif(not _jemalloc_built(), reason="this pyarrow has no jemalloc")]


def _pool_in_fresh_process(script: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    environment.update(env)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          env=environment, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_qa_first_makes_jemalloc_the_default_pool():
    assert _pool_in_fresh_process("""
        import qa
        import pyarrow as pa
        print(pa.default_memory_pool().backend_name)
    """) == "jemalloc"


def test_the_users_choice_in_the_environment_wins():
    assert _pool_in_fresh_process("""
        import qa
        import pyarrow as pa
        print(pa.default_memory_pool().backend_name)
    """, ARROW_DEFAULT_MEMORY_POOL="system") == "system"


def test_a_pyarrow_imported_before_qa_keeps_its_pool_and_the_environment_is_left_alone():
    plain = _pool_in_fresh_process("""
        import pyarrow as pa
        print(pa.default_memory_pool().backend_name)
    """)
    assert _pool_in_fresh_process("""
        import os
        import pyarrow as pa
        import qa
        print(pa.default_memory_pool().backend_name, os.environ.get("ARROW_DEFAULT_MEMORY_POOL"))
    """) == f"{plain} None"


def test_the_local_pools_workers_allocate_from_jemalloc_too():
    out = _pool_in_fresh_process("""
        import qa
        import workkit
        from qa.engine._executors import LocalPool

        with LocalPool(2) as pool:
            print(sorted({name for name, _pid in pool.map_chunks(workkit.arrow_pool, [[1], [2], [3]], None)}))
    """)
    assert out == "['jemalloc']"


def test_give_back_returns_the_free_pages_between_live_blocks_and_keeps_the_live_ones():
    out = _pool_in_fresh_process("""
        import numpy as np
        import qa
        from qa._memory import _malloc_trim, give_back

        def rss():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) // 1024

        if _malloc_trim() is None:
            print("no-trim")
            raise SystemExit
        blocks = [np.full(8_000, k, np.float64) for k in range(4_000)]  # 64 kB each, inside the heap
        del blocks[::2]  # 125 MB free, each hole between two live blocks
        before = rss()
        give_back()
        after = rss()
        intact = all(float(b[0]) == k and float(b[-1]) == k for k, b in zip(range(1, 4_000, 2), blocks))
        print(before - after >= 60, intact)
    """)
    if out == "no-trim":
        pytest.skip("no malloc_trim in this C library")
    assert out == "True True"
