"""Shared fixtures for the notebook tests: the checkout, the kernel's environment and tiny
throwaway notebooks (a kernel that imports nothing heavy starts in about a second)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

REPO = Path(__file__).resolve().parents[2]


def kernel_env() -> dict[str, str]:
    """What a subprocess (pytest --nbval, the workbench CLI) needs to run this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.pop("MPLBACKEND", None)
    env["WORKBENCH_HEADLESS"] = "1"  # static figures (notebook_helpers.figure_backend)
    return env


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def tiny_notebooks(tmp_path) -> Path:
    """01 prints its parameters and writes a file; 02 fails in its second code cell when `fail`."""
    d = tmp_path / "nbs"
    write_notebook(d / "01_hello.ipynb", 'family: str = "x"  # family\nword: str = "hi"  # what to print',
                   "print(family, word)",
                   "from pathlib import Path\nPath('artifacts').mkdir(exist_ok=True)\n"
                   "Path('artifacts/report.html').write_text('<p>report</p>')")
    write_notebook(d / "02_fails.ipynb", 'family: str = "x"  # family\nfail: bool = True  # raise in cell 2',
                   "x = 1", "if fail:\n    raise ValueError('boom: a parity number moved')")
    return d


@pytest.fixture
def python() -> str:
    return sys.executable
