"""Fixtures for family tests: the cached tiny reference builds, copies of them to break on
purpose (fault localization), and the CLI run in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def reference_dir():
    """The cached tiny build (official/ + converted/) of a family, built once per cache."""
    from workbench import registry
    from workbench.references import ensure_reference

    return lambda family: ensure_reference(registry.get_family(family))


@pytest.fixture
def broken_copy(reference_dir, tmp_path):
    """A copy of a family's tiny build whose `converted/` side the test then breaks.

    Only `converted/` (the native side) is ever edited, so the official run is the
    untouched reference and parity has to point at the broken component.
    """
    def copy(family: str) -> Path:
        dest = tmp_path / family
        shutil.copytree(reference_dir(family), dest)
        return dest

    return copy


def _perturb_weight(module_dir: Path, key: str, delta: float = 0.1) -> None:
    """Add a ramp from -delta to +delta to one tensor: unlike a constant shift, a following
    LayerNorm cannot normalize it away."""
    import torch
    from safetensors.torch import load_file, save_file

    (path,) = sorted(module_dir.glob("*.safetensors"))
    state = load_file(str(path))
    assert key in state, f"{key} not in {path}: {sorted(state)[:5]}..."
    tensor = state[key]
    state[key] = tensor + torch.linspace(-delta, delta, tensor.numel(), dtype=tensor.dtype).view_as(tensor)
    save_file(state, str(path))


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))


@pytest.fixture
def perturb_weight():
    """`perturb_weight(module_dir, key, delta=0.1)`: perturb one tensor of a module's safetensors."""
    return _perturb_weight


@pytest.fixture
def edit_json():
    """`edit_json(path, **changes)`: update top-level keys of a JSON file (manifest, scheduler config)."""
    return _edit_json


@pytest.fixture
def cli(capsys):
    """Run `workbench ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from workbench.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def single_torch_thread():
    """Run on one torch thread, restored afterwards.

    The tiny models are too small to gain from a second thread, and on a busy 2-core
    machine two spinning OpenMP threads make a parity run ~10x slower. Both sides run in
    the same process, so they still share one thread count (results move ~1e-7 with it).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
