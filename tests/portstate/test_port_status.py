"""PORT_STATUS.md is generated and current for every family; `workbench status` reads or runs the gates."""

from pathlib import Path

import pytest

from workbench import registry
from workbench.cli import main
from workbench.portstate import gates as G
from workbench.portstate import report
from workbench.portstate import state as S

ROOT = Path(__file__).resolve().parents[2]
WAN = registry.get_family("wan_t2v")


@pytest.mark.parametrize("family", sorted(registry.FAMILIES))
def test_committed_port_status_is_current(family):
    fam = registry.get_family(family)
    path, expected = report.render_for(fam)
    assert path.is_file(), f"{path} is missing: run `workbench status {family} --write`"
    assert path.read_text() == expected, f"{path} is stale: run `workbench status {family} --write`"


@pytest.mark.parametrize("family", sorted(registry.FAMILIES))
def test_parity_test_ids_name_real_tests(family):
    for c in S.load_family_state(registry.get_family(family)).components:
        test_file, _, test_name = c.parity_test.partition("::")
        assert (ROOT / test_file).is_file(), f"{family}.{c.name}: {test_file} does not exist"
        assert f"def {test_name.partition('[')[0]}(" in (ROOT / test_file).read_text()


def test_stale_status_is_detected_and_regenerated(wan_state, capsys):
    wan_state.questions[0].title = "A reworded question"
    S.save_family_state(wan_state)
    assert not report.is_current(WAN)
    assert main(["status", "wan_t2v", "--check"]) == 1
    assert "STALE (regenerate with `workbench status wan_t2v --write`)" in capsys.readouterr().out
    assert main(["status", "wan_t2v", "--write"]) == 0
    assert report.is_current(WAN)
    assert "A reworded question" in report.status_path(WAN).read_text()


def test_reading_changes_nothing(state_root, capsys):
    path = S.state_path(WAN)
    before = path.read_bytes(), report.status_path(WAN).read_bytes()
    assert main(["status", "wan_t2v"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | component parity | pass |" in out and "PORT_STATUS.md: current" in out
    assert (path.read_bytes(), report.status_path(WAN).read_bytes()) == before


def test_a_failing_component_blocks_the_later_gates_when_read(wan_state):
    record = wan_state.component("transformer")
    record.status, record.evidence.result, record.evidence.detail = "failed", "fail", "noise_pred: 1.0e-03 > 0"
    gates = G.read_gates(wan_state)
    assert [g.result for g in gates] == ["fail", "not_run", "not_run", "not_run"]
    assert gates[2].detail.startswith("blocked by component parity; last recorded pass")
    assert G.next_step(WAN, wan_state, gates) == \
        "fix component transformer (noise_pred: 1.0e-03 > 0); then `workbench component-parity wan_t2v`"
    assert "component transformer: failed" in G.blockers(wan_state, gates)


def test_a_blocked_component_points_at_its_issue(wan_state):
    wan_state.issues.append(S.Row("I002", "the VAE needs tiling"))
    record = wan_state.component("vae")
    record.status, record.evidence, record.blocked_by = "blocked", None, "I002"
    gates = G.read_gates(wan_state)
    assert G.next_step(WAN, wan_state, gates) == "resolve I002 (blocks component vae)"
    assert "I002 the VAE needs tiling" in G.blockers(wan_state, gates)


def test_running_stops_opening_gates_at_the_first_failure(state_root, monkeypatch, capsys):
    def must_not_run(family):
        raise AssertionError("a gate after a failing one ran")

    monkeypatch.setitem(G.RUNNERS, "smoke", lambda family: ("fail", "output (1, 9, 32, 32, 3) has NaN"))
    monkeypatch.setitem(G.RUNNERS, "pipeline_parity", must_not_run)
    monkeypatch.setitem(G.RUNNERS, "example", must_not_run)
    assert main(["status", "wan_t2v", "--run"]) == 1
    state = S.load_family_state(WAN)
    assert [state.gates[g].result for g in G.GATES[1:]] == ["fail", "not_run", "not_run"]
    assert state.gates["example"].detail == "blocked: smoke did not pass"
    assert all(c.status == "non_skip_pass" and c.evidence.command == "workbench status wan_t2v --run"
               for c in state.components)
    assert report.is_current(WAN)  # --run regenerates PORT_STATUS.md
    assert "fix the smoke gate (output (1, 9, 32, 32, 3) has NaN)" in report.status_path(WAN).read_text()


def test_smoke_and_pipeline_parity_gates_run_for_real(wan_dir):
    assert G.run_smoke(WAN) == ("pass", "preset tiny-ci, cpu exact: 7 stages, output (1, 9, 32, 32, 3), finite")
    result, detail = G.run_pipeline_parity(WAN)
    assert result == "pass", detail
    assert "vs diffusers.WanPipeline" in detail and "checkpoints pass, max abs diff 0.000e+00" in detail


@pytest.mark.parametrize("source, expected", [
    (None, ("fail", "examples/wan_t2v.py does not exist")),
    ("import sys\nsys.exit('no model dir given')\n", ("fail", "examples/wan_t2v.py exited 1: no model dir given")),
    ("print('ok')\n", ("pass", "examples/wan_t2v.py exited 0")),
])
def test_example_gate(tmp_path, monkeypatch, source, expected):
    monkeypatch.setattr(G, "REPO_ROOT", tmp_path)
    if source is not None:
        (tmp_path / "examples").mkdir()
        (tmp_path / "examples" / "wan_t2v.py").write_text(source)
    assert G.run_example(WAN) == expected
