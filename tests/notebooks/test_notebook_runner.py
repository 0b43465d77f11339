"""The papermill batch runner: statuses, failures that name the cell, skipping, the index,
and blessing the executed notebooks nbval checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import nbformat
import pytest

from tests.notebooks.conftest import REPO, kernel_env, write_notebook
from workbench import notebooks as runner
from workbench.errors import ParameterError, WorkbenchError
from workbench.commands.bless import bless_family
from workbench.executors import LocalExecutor
from workbench.run_report import summary_table


def test_failure_names_notebook_and_cell_and_the_others_still_run(tiny_notebooks, tmp_path):
    out = tmp_path / "run"
    cwd = os.getcwd()
    results = runner.run_family("wan_t2v", out=out, progress=False, jobs=2, notebooks_dir=tiny_notebooks)

    assert [(r.name, r.status) for r in results] == [("01_hello", "ok"), ("02_fails", "failed")]  # notebook order
    assert os.getcwd() == cwd  # kernels start in `out`; this process never changes directory
    failed = results[1]
    # cells: parameters, injected-parameters, "x = 1", the raise
    assert failed.detail == "cell 3 (In [4]): ValueError: boom: a parity number moved"
    executed = nbformat.read(out / "02_fails.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["ename"] == "ValueError"  # the failed notebook is kept, with its error
    table = summary_table(results)
    assert "02_fails  FAILED" in table and "cell 3 (In [4]): ValueError" in table
    index = (out / "index.html").read_text()
    assert "href='01_hello.ipynb'" in index and "href='02_fails.ipynb'" in index
    assert "href='artifacts/report.html'" in index  # files a notebook wrote, relative to its working directory
    assert (out / "artifacts" / "report.html").is_file()
    assert (out / "summary.txt").read_text() == table + "\n"


def test_notebooks_in_parallel_each_run_in_their_own_directory(tmp_path):
    """papermill's `cwd=` chdirs the whole process; parallel notebooks must not share it."""
    nbs = tmp_path / "nbs"
    for name in ("01_a", "02_b"):
        write_notebook(nbs / f"{name}.ipynb", 'family: str = "x"  # family',
                       "import os\nfrom pathlib import Path\nPath('where.txt').write_text(os.getcwd())")
    outs = {family: tmp_path / "runs" / family for family in ("wan_t2v", "stable_audio")}
    cwd = os.getcwd()

    by_family = runner.run_notebooks(outs, progress=False, executor=LocalExecutor(2), notebooks_dir=nbs)

    assert os.getcwd() == cwd
    assert [r.status for results in by_family.values() for r in results] == ["ok"] * 4
    for out in outs.values():
        assert (out / "where.txt").read_text() == str(out.resolve())


def test_up_to_date_notebooks_are_skipped_until_forced_or_changed(tiny_notebooks, tmp_path):
    out = tmp_path / "run"

    def statuses(**kwargs):
        results = runner.run_family("wan_t2v", out=out, progress=False, notebooks_dir=tiny_notebooks, **kwargs)
        return [r.status for r in results]

    assert statuses() == ["ok", "failed"]
    assert statuses() == ["skipped", "failed"]  # a failure is never "up to date"
    assert statuses(force=True) == ["ok", "failed"]
    assert statuses(settings={"word": "changed"}) == ["ok", "failed"]
    assert statuses(settings={"word": "changed", "fail": False}) == ["skipped", "ok"]
    stamp = json.loads((out / "02_fails.run.json").read_text())
    assert stamp["parameters"] == {"family": "wan_t2v", "fail": False} and stamp["status"] == "ok"
    (tiny_notebooks / "01_hello.ipynb").write_text((tiny_notebooks / "01_hello.ipynb").read_text().replace("hi", "ho"))
    assert statuses(settings={"word": "changed", "fail": False}) == ["ok", "skipped"]  # notebook source changed


def test_settings_must_be_declared_by_a_selected_notebook(tiny_notebooks):
    with pytest.raises(ParameterError, match=r"--set nosuch: no selected notebook declares it; "
                                             r"declared parameters: fail, family, word"):
        runner.run_family("wan_t2v", settings={"nosuch": 1}, progress=False, notebooks_dir=tiny_notebooks)
    paths = runner.discover(["02"], tiny_notebooks)
    assert runner.notebook_parameters(paths, "wan_t2v", {"word": "x", "fail": False}, strict=False) == {
        paths[0]: {"family": "wan_t2v", "fail": False}}


def test_selection_and_settings_parsing(tiny_notebooks):
    assert [p.stem for p in runner.discover(["02", "01_hello"], tiny_notebooks)] == ["01_hello", "02_fails"]
    with pytest.raises(ParameterError, match="--notebooks '07': no such notebook; available: 01_hello, 02_fails"):
        runner.discover(["07"], tiny_notebooks)
    assert runner.parse_settings(["steps=4", "preset=tiny-ci", "sweep_steps=[1, 2]", "preset2=null"]) == {
        "steps": 4, "preset": "tiny-ci", "sweep_steps": [1, 2], "preset2": None}
    with pytest.raises(ParameterError, match="the family is the FAMILY argument"):
        runner.parse_settings(["family=wan_t2v"])
    with pytest.raises(ParameterError, match="expected KEY=VALUE"):
        runner.parse_settings(["steps"])
    with pytest.raises(ParameterError, match="--jobs 0: expected 1 or more"):
        runner.run_family("wan_t2v", jobs=0, notebooks_dir=tiny_notebooks)


def test_kernel_environment_puts_the_checkout_first_and_drops_mplbackend(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("PYTHONPATH", f"/elsewhere{os.pathsep}{REPO}")
    with runner.kernel_environment():
        assert os.environ["PYTHONPATH"] == f"{REPO}{os.pathsep}/elsewhere"
        assert "MPLBACKEND" not in os.environ
    assert os.environ["MPLBACKEND"] == "agg"


def test_bless_swaps_in_normalized_notebooks_only_when_all_pass(tiny_notebooks, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_REFERENCE_OUTPUTS", str(tmp_path / "ref"))
    passing = tmp_path / "passing"
    passing.mkdir()
    (passing / "01_hello.ipynb").write_bytes((tiny_notebooks / "01_hello.ipynb").read_bytes())

    (target,) = bless_family("wan_t2v", only="notebooks", progress=False, notebooks_dir=passing)

    assert target == tmp_path / "ref" / "notebooks" / "wan_t2v"
    assert sorted(p.name for p in target.iterdir()) == ["01_hello.ipynb"]  # no stamps, index or artifacts
    nb = nbformat.read(target / "01_hello.ipynb", as_version=4)
    assert nb.metadata.papermill == {"default_parameters": {}, "parameters": {"family": "wan_t2v"}, "version": nb.metadata.papermill.version}
    assert not any("papermill" in c.metadata or "execution" in c.metadata for c in nb.cells)
    assert nb.cells[1].id == "injected-parameters"
    assert nb.cells[2].outputs[0].text == "wan_t2v hi\n"
    assert nb.metadata.workbench.numeric_environment["cpu_capability"]  # where it was blessed

    before = (target / "01_hello.ipynb").read_bytes()
    with pytest.raises(WorkbenchError, match=r"not blessed, notebooks failed: 02_fails: cell 3 .*ValueError"):
        bless_family("wan_t2v", only="notebooks", progress=False, notebooks_dir=tiny_notebooks)
    assert (target / "01_hello.ipynb").read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["wan_t2v"]  # no temporary directory left
    assert not list((tmp_path / "ref").glob(".staging-*"))


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=cwd,
                          env=kernel_env(), capture_output=True, text=True, timeout=600)


def test_cli_refuses_bad_input_in_one_line(tmp_path):
    for args, message in [((), "give one FAMILY or --all"),
                          (("wan_t2v", "--all"), "give one FAMILY or --all"),
                          (("nosuch",), "unknown family 'nosuch'"),
                          (("wan_t2v", "--set", "nosuch=1"), "--set nosuch: no selected notebook declares it")]:
        proc = _cli("run", *args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


@pytest.mark.slow
def test_cli_runs_the_wiring_notebook_of_the_default_family(tmp_path):
    proc = _cli("run", "wan_t2v", "--notebooks", "01", "--set", "steps=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wan_t2v  01_pipeline_wiring  ok" in proc.stdout
    run_dir = tmp_path / "runs" / "wan_t2v"
    assert f"index: runs/wan_t2v/index.html" in proc.stdout and (run_dir / "index.html").is_file()
    nb = nbformat.read(run_dir / "01_pipeline_wiring.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "steps  = 2" in printed and "finite=True" in printed
    again = _cli("run", "--all", "--notebooks", "01", "--set", "steps=2", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    # same notebook, parameters and code (the family column is as wide as the longest registered name)
    assert re.search(r"^wan_t2v +01_pipeline_wiring +skipped", again.stdout, re.M), again.stdout
    assert "index: runs/index.html" in again.stdout
    assert "href='wan_t2v/01_pipeline_wiring.ipynb'" in (tmp_path / "runs" / "index.html").read_text()
