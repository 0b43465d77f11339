"""Shared fixtures: one tiny LTX-2 build per session (official/ + converted/)."""

from __future__ import annotations

import shutil

import pytest
import torch

from workbench import registry
from workbench.families.offline import quiet_hf
from workbench.references import build_reference


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and both sides of a comparison share the count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def family():
    return registry.get_family("ltx2")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, family):
    quiet_hf()
    return build_reference(family, tmp_path_factory.mktemp("ltx2") / "tiny")


@pytest.fixture
def model_copy(model_dir, tmp_path):
    """A copy of the build whose converted/ weights a test may edit."""
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    return copy
