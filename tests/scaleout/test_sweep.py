"""`workbench sweep` on the local executor: the grid, case ids, resume after an interruption
or a failure, the shared summary/index, and the executor options of the CLI."""

from __future__ import annotations

import json
import sys

import pytest

from tests.scaleout.faults import Interrupted, faulty
from workbench import cli
from workbench.errors import WorkbenchError
from workbench.executors import make_executor
from workbench.sweep import case_path, make_cases, parse_grid, run_sweep


def test_grid_values_parse_like_set_and_every_combination_is_a_case():
    grid = parse_grid(["seed=0,1", "guidance_scale=3,5.5", 'prompt=["a cat, wet", "a dog"]'])
    assert grid == {"seed": [0, 1], "guidance_scale": [3, 5.5], "prompt": ["a cat, wet", "a dog"]}
    cases = make_cases("wan_t2v", grid, {"num_inference_steps": 2})
    assert len(cases) == 8 and len({c.key for c in cases}) == 8
    assert cases[1].label == "seed=0 guidance_scale=3 prompt=a dog"
    assert cases[1].request == {"num_inference_steps": 2, "seed": 0, "guidance_scale": 3, "prompt": "a dog"}
    # The id depends on the inputs only: the same grid point is the same file in every run.
    again = make_cases("wan_t2v", parse_grid(["prompt=[\"a cat, wet\", \"a dog\"]", "guidance_scale=3,5.5",
                                              "seed=0,1"]), {"num_inference_steps": 2})
    assert {c.key for c in again} == {c.key for c in cases}
    assert make_cases("wan_t2v", {"seed": [0]}, mode="fast")[0].key != make_cases("wan_t2v", {"seed": [0]})[0].key


@pytest.mark.parametrize("call, message", [
    (lambda: parse_grid(["sed=0,1"]), "--grid: unknown parameter 'sed'; did you mean seed"),
    (lambda: parse_grid(["seed=0,0"]), "a value is repeated"),
    (lambda: parse_grid(["seed"]), "expected KEY=V1,V2"),
    (lambda: parse_grid(["seed=0", "seed=1"]), "given twice"),
    (lambda: make_cases("wan_t2v", {"seed": [0]}, {"seed": 1}), "seed: given by --set and by --grid"),
    (lambda: make_cases("wan_t2v", {}), "a sweep needs at least one varied parameter"),
    (lambda: make_cases("nosuch", {"seed": [0]}), "unknown family 'nosuch'"),
    (lambda: make_executor("local", address="127.0.0.1:6379"), "--address .* needs --executor ray"),
])
def test_bad_sweeps_are_refused_naming_the_flag(call, message):
    with pytest.raises(WorkbenchError, match=message):
        call()


def test_an_interrupted_sweep_resumes_from_what_finished(tmp_path):
    out = tmp_path / "sweep"
    cases = make_cases("wan_t2v", {"seed": [0, 1, 2]})
    interrupted = [cases[0], faulty(cases[1], Interrupted), cases[2]]
    with pytest.raises(KeyboardInterrupt):
        run_sweep(interrupted, out, progress=False)
    assert case_path(out, cases[0]).is_file() and not case_path(out, cases[1]).exists()
    assert "seed=0  ok" in (out / "summary.txt").read_text()  # the index shows what finished

    first = case_path(out, cases[0]).read_bytes()
    results = run_sweep(cases, out, progress=False)
    assert [r.status for r in results] == ["skipped", "ok", "ok"]
    assert case_path(out, cases[0]).read_bytes() == first
    assert [r.status for r in run_sweep(cases, out, force=True, progress=False)] == ["ok", "ok", "ok"]
    assert case_path(out, cases[0]).read_bytes() == first  # no wall-clock field: reruns write the same file


def test_a_failing_case_keeps_the_others_and_runs_again_next_time(tmp_path):
    out = tmp_path / "sweep"
    cases = make_cases("wan_t2v", {"height": [32, 30]})
    ok, bad = run_sweep(cases, out, progress=False)
    assert ok.status == "ok" and json.loads(case_path(out, cases[0]).read_text())["passed"] is True
    assert bad.status == "failed"
    assert bad.detail == ("StageVerificationError: stage 'InputValidationStage': field 'height' expected a "
                          "positive multiple of 16, got 30")
    assert bad.output == case_path(out, cases[1]).with_suffix(".error.txt") and bad.output.is_file()
    assert not case_path(out, cases[1]).exists()
    assert [r.status for r in run_sweep(cases, out, progress=False)] == ["skipped", "failed"]  # only the failure reruns


def test_cli_sweep_writes_the_run_summary_and_index(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "wan_t2v", "--grid", "seed=0,1", "--set", "num_inference_steps=2", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "family   case    status  seconds  detail" in printed and "wan_t2v  seed=1  ok" in printed
    assert (out / "summary.txt").read_text() in printed
    index = (out / "index.html").read_text()
    assert "<title>workbench sweep wan_t2v</title>" in index and "<th>case</th>" in index
    for case in make_cases("wan_t2v", {"seed": [0, 1]}, {"num_inference_steps": 2}):
        assert f"href='cases/{case.key}.json'>{case.label}</a>" in index
    assert cli.main(argv) == 0 and "wan_t2v  seed=0  skipped" in capsys.readouterr().out


def test_ray_executor_without_ray_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(WorkbenchError, match=r"pip install 'workbench\[ray\]'"):
        make_executor("ray")
    assert cli.main(["sweep", "wan_t2v", "--grid", "seed=0,1", "--executor", "ray", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "workbench sweep: error: --executor ray needs Ray, an optional extra: pip install 'workbench[ray]'\n"


def test_ray_asks_for_a_gpu_only_for_tasks_that_run_on_cuda():
    from workbench.executors import RayExecutor
    from workbench.notebooks import NOTEBOOKS_DIR, notebook_device

    ray = RayExecutor()
    assert [ray.gpus(device, cluster_gpus=0) for device in ("cpu", "auto", "cuda")] == [0, 0, 1]
    assert [ray.gpus(device, cluster_gpus=8) for device in ("cpu", "auto", "cuda")] == [0, 1, 1]
    with pytest.raises(WorkbenchError, match="with --executor ray, Ray assigns the GPU; use 'cuda' or 'auto'"):
        ray.gpus("cuda:1", cluster_gpus=8)
    # A notebook's device: as set, else its parameters cell's default.
    assert notebook_device(NOTEBOOKS_DIR / "03_generation.ipynb", {}) == "auto"
    assert notebook_device(NOTEBOOKS_DIR / "04_parity.ipynb", {}) == "cpu"
    assert notebook_device(NOTEBOOKS_DIR / "04_parity.ipynb", {"device": "cuda"}) == "cuda"
