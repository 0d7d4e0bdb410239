"""Shared fixtures: the real exports in ../shared/data (skipped cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_default = ROOT.parent / "shared" / "data"
SHARED_DATA = Path(os.environ.get("QA_TEST_DATA", _default))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real exports; the test is skipped when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (set QA_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _store_in_tmp(tmp_path, monkeypatch):
    """`qa run` stores every run in $QA_DB (default ./qa.duckdb): keep tests' runs in their tmp folder."""
    monkeypatch.setenv("QA_DB", str(tmp_path / "qa.duckdb"))
    monkeypatch.delenv("QA_TEST_PAUSE_IN_WRITE", raising=False)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)  # `qa run` would send its work there
