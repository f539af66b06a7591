"""Shared fixtures: the real measurement files of ../shared/data.

The files are referenced where they lie, never copied into the repository
(their licences vary; see ../shared/data/PROVENANCE.md).  Set
QDLIGHT_SHARED_DATA to point elsewhere; tests that need a file skip with the
reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("QDLIGHT_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(relpath: str) -> Path:
    """Path of a file under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / relpath
    if not path.is_file():
        pytest.skip(f"real data file {relpath} not found under {SHARED_DATA}")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} not found")
    return SHARED_DATA
