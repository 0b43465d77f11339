"""Shared fixtures: the tiny reference builds (cached across runs) and manifest helpers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from workbench.parity.numeric_env import PINS

# Regression runs in the numeric environment blessing pins (workbench.parity.numeric_env):
# set here, before any test imports torch, and inherited by every kernel and CLI child. A value
# already set is kept: the capability-matrix test runs this suite under each other vector path.
for _name, _value in PINS.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def wan_dir() -> Path:
    """The cached tiny Wan 2.1 reference build (official/ + converted/)."""
    from workbench import registry
    from workbench.references import ensure_reference

    return ensure_reference(registry.get_family("wan_t2v"))


@pytest.fixture
def wan_copy(wan_dir, tmp_path) -> Path:
    """A private copy of the tiny Wan build that a test may corrupt."""
    dst = tmp_path / "wan"
    shutil.copytree(wan_dir, dst)
    return dst


def edit_manifest(model_dir: Path, **changes) -> None:
    path = Path(model_dir) / "model_index.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))
