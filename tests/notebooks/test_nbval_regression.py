"""nbval over the blessed executed notebooks in reference_outputs/notebooks/<family>/.

Each family's notebooks are copied to a temporary working directory (files the notebooks
write land there, not in reference_outputs/) and re-executed by nbval in a subprocess:
kernel of this environment (`--nbval-current-env`), no cache, the sanitize file, and the
`workbench.nbval_numeric` plugin: every output not tagged `nbval-ignore-output` must come out
the same, words and integers exactly, printed floats within one unit of their last digit plus
the cross-host regression tolerance (a blessing from another CPU passes; a real change does not).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.notebooks.conftest import REPO, kernel_env, write_notebook
from workbench import registry

REFERENCE = REPO / "reference_outputs" / "notebooks"
SANITIZE = REFERENCE / "nbval_sanitize.cfg"
SOURCES = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def nbval(paths: list[Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
           "-p", "workbench.nbval_numeric", "--nbval-sanitize-with", str(SANITIZE), "--rootdir", str(cwd),
           "-q", *map(str, paths)]
    return subprocess.run(cmd, cwd=cwd, env={**kernel_env(), **(env or {})}, capture_output=True, text=True,
                          timeout=1200)


def copy_family(family: str, tmp_path: Path, names: list[str] | None = None) -> list[Path]:
    work = tmp_path / family
    work.mkdir()
    return [Path(shutil.copy(p, work)) for p in sorted((REFERENCE / family).glob("*.ipynb"))
            if names is None or p.stem in names]


def _cells(path: Path) -> list[tuple[str, list[str]]]:
    nb = nbformat.read(path, as_version=4)
    return [(c.source, sorted(c.metadata.get("tags", []))) for c in nb.cells
            if "injected-parameters" not in c.metadata.get("tags", [])]


def test_every_sanitize_rule_is_read_by_nbval():
    """nbval reads "regex: X" directly followed by "replace: Y" (with the space); a rule it
    cannot read is silently dropped."""
    import re

    from nbval.plugin import get_sanitize_patterns

    text = SANITIZE.read_text()
    rules = dict(get_sanitize_patterns(text))
    assert len(rules) == text.count("\n[") + text.startswith("[") == 6

    def sanitize(s):
        for regex, replace in rules.items():
            s = re.sub(regex, replace, s)
        return s

    warning = "/venv/lib/site-packages/torch/x.py:144: FutureWarning: old\n  x.apply()\n"
    assert sanitize(warning + "at 0x7f3a2b1c9d00 in /tmp/pytest-3/a.txt") == "<library warning>at 0xADDRESS in TMPPATH"
    assert sanitize("mean 4.633e-01 max_abs 0.000e+00") == "mean 4.633e-01 max_abs 0.000e+00"  # numbers untouched


@pytest.mark.parametrize("family", sorted(registry.FAMILIES))
def test_every_family_has_blessed_notebooks_in_step_with_the_sources(family):
    blessed = REFERENCE / family
    hint = f"run `workbench bless {family} --only notebooks` and commit {blessed.relative_to(REPO)}"
    assert sorted(p.name for p in blessed.glob("*.ipynb")) == [p.name for p in SOURCES], hint
    for source in SOURCES:
        assert _cells(blessed / source.name) == _cells(source), f"{source.name} changed since blessing; {hint}"
        params = nbformat.read(blessed / source.name, as_version=4).metadata.papermill.parameters
        assert params["family"] == family and params.get("device", "cpu") == "cpu"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(registry.FAMILIES))
def test_nbval_reexecutes_the_blessed_notebooks(family, tmp_path):
    proc = nbval(copy_family(family, tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


@pytest.mark.notebook
@pytest.mark.slow
def test_nbval_fails_when_a_parity_number_changes(tmp_path):
    (path,) = copy_family("wan_t2v", tmp_path, ["04_parity"])
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if "summary_table()" in c.source]
    text = cell.outputs[0]["text"]
    assert text.startswith("PASS  family=wan_t2v")
    row = next(line for line in text.splitlines() if line.startswith("final_latents "))
    changed = row.replace("0.000e+00", "1.000e-07", 1)  # max_abs of the final latents moves by 1e-7
    assert changed != row
    cell.outputs[0]["text"] = text.replace(row, changed)
    nbformat.write(nb, path)

    proc = nbval([path], tmp_path)
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert "Cell outputs differ" in proc.stdout and "1.000e-07" in proc.stdout and "1 failed" in proc.stdout


def test_blessed_notebook_folders_are_exactly_the_families():
    """A staging or temp directory (dot-named) is never a family, and nothing unregistered hides there."""
    assert sorted(p.name for p in REFERENCE.iterdir() if p.is_dir() and not p.name.startswith(".")) == \
        sorted(registry.FAMILIES)
    assert not [p.name for p in REFERENCE.iterdir() if p.name.startswith(".")]


@pytest.mark.notebook
def test_nbval_passes_a_last_digit_flip_and_fails_a_real_change(tmp_path):
    """Another host prints -9.763e+00 where the blessing has -9.762e+00: that passes; a 1% change,
    an exact zero becoming 1e-07 or a changed integer still fail, each shown in nbval's diff."""
    code = 'print(f"mean {-9.7625001:.3e} max_abs {0.0:.3e} steps 3")'
    blessed = {"flip": "mean -9.762e+00 max_abs 0.000e+00 steps 3\n",
               "one_percent": "mean -9.860e+00 max_abs 0.000e+00 steps 3\n",
               "zero": "mean -9.763e+00 max_abs 1.000e-07 steps 3\n",
               "integer": "mean -9.763e+00 max_abs 0.000e+00 steps 4\n"}
    path = write_notebook(tmp_path / "printed.ipynb", "x = 0", *[code] * len(blessed))
    nb = nbformat.read(path, as_version=4)
    for count, (cell, text) in enumerate(zip(nb.cells[1:], blessed.values()), start=2):
        cell.execution_count = count  # nbval refuses a reference cell with outputs but no count
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nbformat.write(nb, path)

    proc = nbval([path], tmp_path)
    assert proc.returncode == 1 and "3 failed, 2 passed" in proc.stdout, proc.stdout[-3000:]
    for name in ("one_percent", "zero", "integer"):
        assert blessed[name].strip() in proc.stdout, name
    assert blessed["flip"].strip() not in proc.stdout
