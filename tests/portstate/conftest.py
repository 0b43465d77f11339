"""Port state tests write into a private copy of the committed port state, never into the repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from workbench.portstate import state as S


@pytest.fixture
def state_root(tmp_path, monkeypatch) -> Path:
    """$WORKBENCH_PORTSTATE_ROOT pointing at a copy of every registered family's port state files."""
    from workbench import registry

    root = tmp_path / "portstate"
    for family in registry.FAMILIES.values():
        src = S.family_folder(family)
        dst = root.joinpath(*S.family_package(family).split("."))
        dst.mkdir(parents=True, exist_ok=True)
        for name in (S.STATE_FILE, "PORT_STATUS.md"):
            if (src / name).is_file():
                shutil.copy(src / name, dst / name)
    monkeypatch.setenv(S.ROOT_ENV, str(root))
    return root


@pytest.fixture
def wan_state(state_root):
    """The wan_t2v port state of the private copy, and a function that saves changes to it."""
    from workbench import registry

    return S.load_family_state(registry.get_family("wan_t2v"))
