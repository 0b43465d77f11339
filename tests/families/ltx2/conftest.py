"""Shared fixtures: one tiny LTX-2 build per session (official/ + converted/)."""

from __future__ import annotations

import shutil

import pytest
import torch

from workbench import registry
from workbench.families.offline import quiet_hf
from workbench.references import build_reference

# Tiny models run fastest on one thread, and both sides of a comparison must share the count
# (it moves CPU results by ~1e-7).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def family():
    return registry.get_family("ltx2")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, family):
    quiet_hf()
    return build_reference(family, tmp_path_factory.mktemp("ltx2") / "tiny")


@pytest.fixture(scope="session")
def official_pipe(model_dir, family):
    """The official pipeline, loaded once (each call re-runs set_timesteps, so runs do not leak)."""
    return family.reference.load_official(model_dir / "official", torch.device("cpu"))


@pytest.fixture
def model_copy(model_dir, tmp_path):
    """A copy of the build whose converted/ weights a test may edit."""
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    return copy
