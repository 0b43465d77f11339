"""Wan image-to-video parity: the native pipeline against diffusers' WanImageToVideoPipeline
in exact mode on CPU, including the image checkpoints, and faults localized to where they act."""

from __future__ import annotations

import json

import pytest
import torch

from workbench import registry
from workbench.families.offline import gradient_image
from workbench.parity.runner import run_native, run_parity

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("single_torch_thread")]

FAMILY = "wan_i2v"
# Fault runs: fewer steps and frames, the same code paths.
SMALL = dict(num_inference_steps=2, num_frames=5)


def assert_exact(verdict):
    assert verdict.passed, verdict.summary_table()
    for result in verdict.checkpoints:
        assert result.metrics.max_abs_diff <= 1e-6, (result.name, result.metrics.max_abs_diff)


def test_cli_parity_tiny_ci_is_exact_with_image_checkpoints(cli, tmp_path):
    code, out, _ = cli("parity", FAMILY, "--json", tmp_path / "verdict.json")
    assert code == 0, out
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    names = [c["name"] for c in verdict["checkpoints"]]
    assert names[:7] == ["image_embeds", "prompt_embeds", "negative_prompt_embeds", "timesteps", "sigmas",
                         "initial_latents", "image_latents"]
    assert all(c["metrics"]["max_abs_diff"] == 0.0 for c in verdict["checkpoints"])
    assert [(p["name"], p["passed"]) for p in verdict["probes"]] == [("non_square_no_guidance", True),
                                                                     ("prompt_cleaning", True)]
    shapes = {c["name"]: c["metrics"]["reference_shape"] for c in verdict["checkpoints"]}
    assert shapes["image_embeds"] == [1, 65, 16]           # 8x8 patches + class token, CLIP hidden size
    assert shapes["image_latents"] == [1, 20, 3, 4, 4]     # 4 mask + 16 latent channels
    assert shapes["initial_latents"] == [1, 16, 3, 4, 4]


def test_exact_for_another_image_file_size_and_guidance(tmp_path):
    image = tmp_path / "portrait.png"
    gradient_image(30, 70).save(image)
    request = dict(image=str(image), seed=11, prompt="a robot dancing in a busy market", height=48, width=64,
                   num_frames=13, num_inference_steps=2, guidance_scale=3.5)
    assert_exact(run_parity(FAMILY, request=request).verdict)


def test_exact_for_an_rgba_pil_image_without_guidance():
    rgba = gradient_image(40, 40).convert("RGBA")
    rgba.putalpha(128)
    request = dict(image=rgba, seed=5, guidance_scale=1.0, **SMALL)
    assert_exact(run_parity(FAMILY, request=request).verdict)


@pytest.mark.parametrize("module, key, first_divergence", [
    ("image_encoder", "encoder.layers.0.self_attn.q_proj.weight", "image_embeds"),
    ("text_encoder", "encoder.block.0.layer.0.SelfAttention.q.weight", "prompt_embeds"),
    ("vae", "encoder.conv_out.weight", "image_latents"),
    ("transformer", "blocks.0.attn2.add_k_proj.weight", "noise_cond_step_000"),  # the image cross-attention
    ("vae", "decoder.conv_out.weight", "decoder_output"),
])
def test_broken_weight_is_localized(broken_copy, perturb_weight, module, key, first_divergence):
    model_dir = broken_copy(FAMILY)
    perturb_weight(model_dir / "converted" / module, key)
    verdict = run_parity(FAMILY, request=SMALL, model_dir=model_dir, skip_component_gate=True).verdict
    assert verdict.first_divergence.name == first_divergence
    if first_divergence == "decoder_output":
        assert verdict.result("final_latents").passed


def test_scheduler_shift_is_localized_to_timesteps(broken_copy, edit_json):
    model_dir = broken_copy(FAMILY)
    edit_json(model_dir / "converted" / "scheduler" / "scheduler_config.json", flow_shift=5.0)
    assert run_parity(FAMILY, request=SMALL, model_dir=model_dir, skip_component_gate=True).verdict.first_divergence.name == "timesteps"


def test_native_matches_committed_goldens(reference_dir):
    from workbench.parity.golden import load_golden, regress

    golden, manifest = load_golden(FAMILY, "tiny-ci")
    root = reference_dir(FAMILY)
    native, _ = run_native(root / "converted", registry.get_family(FAMILY).sampling_params("tiny-ci"))
    assert golden.names() == native.names()
    verdict = regress(FAMILY, "tiny-ci", native, model_dir=root)
    assert verdict.passed, verdict.summary_table()
