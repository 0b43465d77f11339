"""The Ray executor on a private local instance (2 CPUs, loopback): a sweep's results equal
the local executor's, a killed worker's task is retried, a task whose worker keeps dying
fails alone, and the notebooks of several families run as one batch of Ray tasks."""

from __future__ import annotations

from tests.scaleout.faults import Dies, faulty
from workbench.executors import RayExecutor
from workbench.notebooks import run_notebooks
from workbench.sweep import case_path, make_cases, run_sweep


def test_a_sweep_on_ray_equals_the_local_one_and_a_killed_worker_is_retried(ray_instance, tmp_path):
    cases = make_cases("wan_t2v", {"seed": [0, 1, 2, 3], "guidance_scale": [3, 5]})
    local = run_sweep(cases, tmp_path / "local", progress=False)
    assert [r.status for r in local] == ["ok"] * 8

    # The first case's worker dies on its first attempt (before any other work, so the
    # retry's fresh worker starts while the other worker runs cases).
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    on_ray = [faulty(cases[0], Dies, attempts_dir=str(attempts))] + cases[1:]
    remote = run_sweep(on_ray, tmp_path / "ray", RayExecutor(max_retries=2), progress=False)

    assert [r.status for r in remote] == ["ok"] * 8
    pids = (attempts / cases[0].key).read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # the killed attempt, then the retry in a new worker
    for case in cases:  # byte for byte: no field differs, wall-clock or otherwise
        assert case_path(tmp_path / "ray", case).read_text() == case_path(tmp_path / "local", case).read_text()
    assert (tmp_path / "ray" / "summary.txt").read_text().count("  ok  ") == 8  # the same summary as locally


def test_a_task_whose_worker_keeps_dying_fails_alone_after_bounded_retries(ray_instance, tmp_path):
    cases = make_cases("wan_t2v", {"height": [48, 30, 32]})
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    on_ray = [faulty(cases[0], Dies, attempts_dir=str(attempts), deaths=99)] + cases[1:]

    dead, invalid, ok = run_sweep(on_ray, tmp_path / "ray", RayExecutor(max_retries=1), progress=False)

    assert len((attempts / cases[0].key).read_text().split()) == 2  # max_retries=1: two attempts, then given up
    assert dead.status == "failed" and dead.detail.startswith("gave up after 2 attempts: ")
    assert "worker" in dead.detail.lower()
    # An exception is the case's own result, as on the local executor, and is not retried.
    assert invalid.status == "failed" and invalid.detail == (
        "StageVerificationError: stage 'InputValidationStage': field 'height' expected a positive multiple of 16, "
        "got 30")
    assert ok.status == "ok" and case_path(tmp_path / "ray", cases[2]).is_file()
    summary = (tmp_path / "ray" / "summary.txt").read_text()
    assert "height=48  FAILED" in summary and "height=32  ok" in summary


def test_notebooks_of_several_families_run_as_ray_tasks(ray_instance, tiny_notebooks, tmp_path):
    outs = {"wan_t2v": tmp_path / "runs" / "wan_t2v", "stable_audio": tmp_path / "runs" / "stable_audio"}

    by_family = run_notebooks(outs, executor=RayExecutor(), progress=False, notebooks_dir=tiny_notebooks)

    (ok,), (failed,) = by_family["wan_t2v"], by_family["stable_audio"]
    assert (ok.name, ok.status, failed.name, failed.status) == ("01_hello", "ok", "01_hello", "failed")
    assert failed.detail == "cell 3 (In [4]): ValueError: boom stable_audio"  # the failing cell, as locally
    for family, out in outs.items():  # each executed with its family's parameters, in its run directory
        assert f"hi from {family}" in (out / "01_hello.ipynb").read_text()
        assert (out / "01_hello.run.json").is_file()
        assert "href='01_hello.ipynb'" in (out / "index.html").read_text()
