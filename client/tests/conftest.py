"""The client's tests: `coffer` driven as a subprocess against a real server, and its parts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parent.parent
if str(CLIENT) not in sys.path:
    sys.path.insert(0, str(CLIENT))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"
