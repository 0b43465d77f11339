"""Ray placement of sequence-parallel cases: a case of `sp` ranks gets one STRICT_PACK placement
group holding all of its GPUs (CPUs on a CPU cluster) on one node, its ranks run there (gloo here),
and its verdict equals the one the local executor writes."""

from __future__ import annotations

import json
from types import SimpleNamespace

from workbench.executors import RayExecutor
from workbench.sweep import case_path, make_cases, run_sweep


def test_a_case_asking_for_n_gpus_gets_them_in_one_strict_pack_bundle():
    ray = RayExecutor()
    task = SimpleNamespace(key="k", device="cuda", cpus=2, sp=4)
    assert ray.placement(task, num_gpus=1) == {"strategy": "STRICT_PACK", "bundles": [{"CPU": 8, "GPU": 4}]}
    assert ray.placement(SimpleNamespace(key="k", device="cpu", cpus=1, sp=2), num_gpus=0) == {
        "strategy": "STRICT_PACK", "bundles": [{"CPU": 2}]}
    assert ray.placement(SimpleNamespace(key="k", device="cuda", cpus=1, sp=1), num_gpus=1) is None


def test_an_sp_case_on_ray_runs_its_ranks_on_one_node_and_equals_the_local_run(ray_instance, tmp_path):
    cases = make_cases("wan_t2v", {"seed": [3]}, what="parity", mode="fast", sp=2)
    too_big = make_cases("wan_t2v", {"seed": [4]}, what="parity", mode="fast", sp=4)
    local = run_sweep(cases, tmp_path / "local", progress=False)
    assert [r.status for r in local] == ["ok"], local[0].detail

    executor = RayExecutor()
    ok, refused = run_sweep(cases + too_big, tmp_path / "ray", executor, progress=False)

    assert ok.status == "ok", ok.detail
    record = case_path(tmp_path / "ray", cases[0]).read_text()
    assert record == case_path(tmp_path / "local", cases[0]).read_text()  # byte for byte
    data = json.loads(record)
    assert data["passed"] and data["sequence_parallel"]["world_size"] == 2
    placement = executor.placements[cases[0].key]
    assert placement["strategy"] == "STRICT_PACK" and len(placement["nodes"]) == 1
    assert [dict(b) for b in placement["bundles"]] == [{"CPU": 2.0}]
    # 4 ranks x 1 CPU fit no node of the 2-CPU instance: refused before anything runs
    assert refused.status == "failed" and "need {'CPU': 4} on one node" in refused.detail
    assert not ray_instance.util.placement_group_table() or all(
        g["state"] == "REMOVED" for g in ray_instance.util.placement_group_table().values())


def test_a_failing_rank_stops_the_others_and_is_named(monkeypatch):
    import pytest

    from workbench.api import sequence_parallel
    from workbench.errors import WorkbenchError

    monkeypatch.setattr(sequence_parallel, "GRACE_S", 2.0)
    with pytest.raises(WorkbenchError, match=r"--sp 2: rank 1 exited with code 2: workbench rank_1_fails: error: "
                                             r"planted failure") as exc:
        sequence_parallel.launch_call("tests.scaleout.sp_faults:rank_1_fails", {"message": "planted failure"}, 2)
    assert "\n" not in str(exc.value)
