"""Issue 16 item 4: a first divergence inside the denoiser is followed, with no user input, to
the first divergent module on both sides (module outputs of the step's first denoiser call)."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file

from workbench.parity.drilldown import module_name_map, triggers_drilldown
from workbench.parity.runner import run_parity


def plant(model_dir, module, key, delta=0.1):
    """One weight of converted/ perturbed by a ramp (a LayerNorm after it cannot undo it)."""
    path = next((model_dir / "converted" / module).glob("*.safetensors"))
    state = load_file(str(path))
    state[key] = state[key] + torch.linspace(-delta, delta, state[key].numel()).view_as(state[key])
    save_file(state, str(path), metadata={"format": "pt"})


def test_a_single_weight_fault_in_one_dit_block_is_named_to_its_submodule(broken_copy, monkeypatch):
    model_dir = broken_copy("wan_t2v")
    plant(model_dir, "transformer", "blocks.1.ffn.net.2.weight")
    run = run_parity("wan_t2v", model_dir=model_dir, skip_component_gate=True)
    verdict = run.verdict
    assert verdict.first_divergence.name == "noise_cond_step_000"
    drill = verdict.drilldown
    assert drill["checkpoint"] == "noise_cond_step_000" and drill["step"] == 0
    assert drill["first_module"] == "transformer.blocks.1.ffn.net.2"
    rows = {row["name"]: row for row in drill["modules"]}
    # everything before the faulty layer is bitwise, the faulty layer and its parents are not
    assert all(row["passed"] and row["max_abs"] == 0.0 for row in drill["modules"][:drill["modules"].index(
        rows["transformer.blocks.1.ffn.net.2"])])
    assert not rows["transformer.blocks.1.ffn"]["passed"] and not rows["transformer.blocks.1"]["passed"]
    assert rows["transformer.blocks.1.ffn.net.2"]["max_abs"] > 1e-3
    assert "transformer.blocks.0.attn1.to_q" in rows  # reference modules by their official names
    # the verdict JSON carries it
    assert verdict.to_dict()["drilldown"]["first_module"] == "transformer.blocks.1.ffn.net.2"
    assert drill["passes"] == 1
    # a full-size denoiser is drilled in two passes (blocks first, then inside the first divergent
    # one): forced here on the tiny model, the same module comes out
    import workbench.parity.drilldown as drilldown
    from workbench import registry

    monkeypatch.setattr(drilldown, "TWO_PASS_PARAMETERS", 0)
    two = drilldown.drill_down(registry.get_family("wan_t2v"), model_dir, run.params, verdict.first_divergence)
    assert two["passes"] == 2 and two["first_module"] == "transformer.blocks.1.ffn.net.2"
    assert all(m["name"].startswith("transformer.blocks.1") for m in two["modules"])


def test_the_low_noise_expert_is_drilled_at_its_step(broken_copy):
    """Wan 2.2: a fault in transformer_2 is followed into transformer_2's modules at its first step."""
    model_dir = broken_copy("wan22_t2v")
    plant(model_dir, "transformer_2", "blocks.0.attn1.to_q.weight")
    verdict = run_parity("wan22_t2v", model_dir=model_dir, skip_component_gate=True).verdict
    drill = verdict.drilldown
    assert drill["expert"] == "transformer_2" and drill["step"] == verdict.first_divergence.step == 2
    assert drill["first_module"] == "transformer_2.blocks.0.attn1.to_q"


def test_no_drilldown_outside_the_denoiser(broken_copy):
    model_dir = broken_copy("wan_t2v")
    plant(model_dir, "vae", "decoder.conv_out.weight")
    verdict = run_parity("wan_t2v", model_dir=model_dir, skip_component_gate=True).verdict
    assert verdict.first_divergence.name == "decoder_output" and not triggers_drilldown(verdict)
    assert verdict.drilldown is None


def test_native_dit_modules_are_named_through_the_converter(reference_dir):
    """The fast-mode native Wan DiT names modules otherwise (ffn_out, self_attn.out, fused qkv):
    the converter's key map renames what it maps one to one and leaves the fused ones out."""
    from diffusers import WanTransformer3DModel

    from workbench.components.wan_transformer import WanTransformer

    folder = reference_dir("wan_t2v") / "official" / "transformer"
    official = WanTransformer3DModel.from_pretrained(folder)
    with torch.device("meta"):
        native = WanTransformer(WanTransformer.read_config(folder))
    mapping = module_name_map(native, list(official.state_dict()))
    assert mapping["blocks.1.ffn_out"] == "blocks.1.ffn.net.2"
    assert mapping["blocks.0.self_attn.out"] == "blocks.0.attn1.to_out.0"
    assert mapping["blocks.0.cross_attn.q"] == "blocks.0.attn2.to_q"
    assert mapping["blocks.0"] == "blocks.0" and mapping["head"] == "proj_out"
    assert "blocks.0.self_attn.qkv" not in mapping  # q, k and v fused: no single official module
    native_modules = {name for name, _ in native.named_modules()}
    official_modules = {name for name, _ in official.named_modules()}
    assert set(mapping) <= native_modules and set(mapping.values()) <= official_modules
