"""Component parity for real: official class vs the workbench loader, and what breaks it."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from workbench import registry
from workbench.portstate import components as C
from workbench.portstate import probes
from workbench.portstate import state as S
from workbench.references import tree_sha256
from workbench.runtime.loader import weight_files

WAN = registry.get_family("wan_t2v")


def corrupt_weight(module_dir):
    """Add 1e-3 to the first floating-point tensor of the module's safetensors file."""
    path = weight_files(module_dir)[0]
    tensors = load_file(str(path))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = tensors[name] + 1e-3
    save_file(tensors, str(path), metadata={"format": "pt"})
    return name


def shift_scheduler(module_dir):
    config = json.loads((module_dir / "scheduler_config.json").read_text())
    config["flow_shift"] = 5.0
    (module_dir / "scheduler_config.json").write_text(json.dumps(config))


def test_every_component_matches_exactly(wan_dir):
    results = C.run_component_parity(WAN, wan_dir)
    assert [r.name for r in results] == ["scheduler", "text_encoder", "tokenizer", "transformer", "vae"]
    for r in results:
        assert r.status == "non_skip_pass", r.line()
        assert r.evidence.max_abs_diff == 0.0 and r.evidence.outputs and set(r.evidence.outputs.values()) == {0.0}
    outputs = {r.name: sorted(r.evidence.outputs) for r in results}
    assert outputs["vae"] == ["decoded", "posterior_mean", "posterior_std"]
    assert outputs["tokenizer"] == ["attention_mask", "input_ids"]
    assert "step_1_prev_sample" in outputs["scheduler"] and "sigmas" in outputs["scheduler"]


@pytest.mark.parametrize("module, corrupt", [
    ("text_encoder", corrupt_weight), ("transformer", corrupt_weight), ("vae", corrupt_weight),
    ("scheduler", shift_scheduler),
])
def test_a_corrupted_converted_module_fails(wan_copy, module, corrupt):
    corrupt(wan_copy / "converted" / module)
    result = C.check_component(WAN, wan_copy, module)
    assert result.status == "failed" and result.evidence.result == "fail"
    assert result.evidence.max_abs_diff > 0.0
    assert "> 0" in result.evidence.detail  # names the output that moved past the tolerance
    assert result.evidence.weights_sha256 != tree_sha256(wan_copy / "official" / module)


def test_a_class_without_a_probe_is_only_reuse_proven(wan_copy, monkeypatch):
    monkeypatch.setattr(probes, "family_probes", lambda package: {})
    result = C.check_component(WAN, wan_copy, "transformer")
    assert result.status == "reuse_proven" and result.evidence.max_abs_diff is None
    assert "no probe for WanTransformer3DModel: add one to workbench/families/wan/component_probes.py" in \
        result.evidence.detail
    corrupt_weight(wan_copy / "converted" / "transformer")
    changed = C.check_component(WAN, wan_copy, "transformer")
    assert changed.status == "failed" and "differs from the official one" in changed.evidence.detail


def test_a_module_missing_from_the_converted_manifest_fails(wan_copy):
    from tests.conftest import edit_manifest

    edit_manifest(wan_copy / "converted", vae=[None, None])
    result = C.check_component(WAN, wan_copy, "vae")
    assert result.status == "failed" and "converted manifest does not enable module 'vae'" in result.evidence.detail


def test_compare_outputs_reports_every_problem():
    a = {"x": torch.zeros(2), "y": torch.zeros(2), "z": torch.tensor([float("nan")]), "only": torch.ones(1)}
    b = {"x": torch.full((2,), 0.5), "y": torch.zeros(3), "z": torch.tensor([float("nan")])}
    diffs, problems = C.compare_outputs(a, b)
    assert diffs == {"only": None, "x": 0.5, "y": None, "z": None}
    assert any("only in official" in p for p in problems) and any("non-finite" in p for p in problems)
    assert any(p.startswith("y: official (2,)") for p in problems)


def test_recording_writes_statuses_and_evidence(state_root, wan_dir, wan_copy):
    corrupt_weight(wan_copy / "converted" / "transformer")
    results, _ = C.record_component_parity(WAN, wan_copy, ["transformer"], command="pytest")
    assert results[0].status == "failed"
    on_disk = S.load_family_state(WAN)
    record = on_disk.component("transformer")
    assert record.status == "failed" and record.evidence.command == "pytest"
    assert record.evidence.test_id == "tests/families/wan_t2v/test_components.py::test_component_parity[transformer]"
    assert record.evidence.versions["torch"] == torch.__version__
    assert on_disk.component("vae").status == "non_skip_pass"  # untouched components keep their records
    C.record_component_parity(WAN, wan_dir, ["transformer"])
    assert S.load_family_state(WAN).component("transformer").status == "non_skip_pass"
