"""The component gate: pipeline parity is refused without non_skip_pass component records."""

import json

import pytest

from workbench import registry
from workbench.cli import main
from workbench.errors import GateError
from workbench.parity.runner import SKIPPED_COMPONENT_GATE, run_parity
from workbench.portstate import state as S
from workbench.portstate.gates import check_component_gate
from workbench.runtime.manifest import read_manifest

WAN = registry.get_family("wan_t2v")


def set_pending(state, name):
    record = state.component(name)
    record.status, record.evidence = "reuse_pending", None
    S.save_family_state(state)


def test_gate_passes_with_the_committed_records(wan_dir):
    assert check_component_gate(WAN, read_manifest(wan_dir / "converted")) == \
        "passed: 5/5 components non_skip_pass (port_state.yaml)"


def test_gate_refuses_a_pending_component(wan_state, wan_dir):
    set_pending(wan_state, "vae")
    with pytest.raises(GateError) as err:
        run_parity("wan_t2v")
    message = str(err.value)
    assert "pipeline parity is gated on component parity; vae (reuse_pending) lack non_skip_pass" in message
    assert "workbench component-parity wan_t2v" in message and "--skip-component-gate" in message


def test_gate_refuses_a_record_for_another_class(wan_state, wan_copy):
    from tests.conftest import edit_manifest

    edit_manifest(wan_copy / "converted", vae=["workbench", "NativeWanVAE"])
    with pytest.raises(GateError, match=r"vae \(record is for diffusers.AutoencoderKLWan, manifest names "
                                        r"workbench.NativeWanVAE\)"):
        check_component_gate(WAN, read_manifest(wan_copy / "converted"))


def test_gate_refuses_a_family_without_port_state(state_root):
    S.state_path(WAN).unlink()
    with pytest.raises(GateError, match=r"component gate: .*has no port state"):
        run_parity("wan_t2v")


def test_cli_refusal_is_one_line_exit_2(wan_state, capsys):
    set_pending(wan_state, "transformer")
    assert main(["parity", "wan_t2v"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "transformer (reuse_pending)" in err


def test_skip_flag_runs_and_is_printed_in_the_verdict(wan_state, tmp_path, capsys):
    set_pending(wan_state, "transformer")
    assert main(["parity", "wan_t2v", "--skip-component-gate", "--json", str(tmp_path / "v.json")]) == 0
    out = capsys.readouterr().out
    assert f"gate component_parity: {SKIPPED_COMPONENT_GATE}" in out
    assert json.loads((tmp_path / "v.json").read_text())["gates"] == {"component_parity": SKIPPED_COMPONENT_GATE}


def test_a_gated_run_records_what_was_checked():
    verdict = run_parity("wan_t2v").verdict
    assert verdict.passed
    assert verdict.gates == {"component_parity": "passed: 5/5 components non_skip_pass (port_state.yaml)",
                             "model_files": "passed: sha256 of every component folder in converted/ matches its "
                                            "non_skip_pass record"}
    assert verdict.to_dict()["gates"] == verdict.gates
