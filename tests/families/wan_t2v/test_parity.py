"""Wan 2.1 pipeline parity: diffusers' WanPipeline vs NativeWanPipeline, real tensors.

Exact mode (CPU, fp32) must hold for any valid request, not only the preset; injected
faults in `converted/` must be named at the checkpoint where they first act.
"""

import json
import random

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import edit_manifest
from workbench import registry
from workbench.cli import main
from workbench.parity.compare import compare_captures
from workbench.parity.golden import load_golden, regress
from workbench.parity.runner import run_native, run_parity, run_reference

FAMILY = registry.get_family("wan_t2v")
WORDS = ["a", "red", "fox", "jumps", "over", "snowy", "hills", "under", "neon", "lights", "&amp;", "  ", "robot"]


def random_request(rng: random.Random) -> dict:
    """A valid request drawn at random: every field the official call takes varies."""
    return {
        "seed": rng.randrange(2**31),
        "prompt": " ".join(rng.choices(WORDS, k=rng.randint(1, 12))),
        "negative_prompt": rng.choice([None, "", " ".join(rng.choices(WORDS, k=rng.randint(1, 6)))]),
        "height": 16 * rng.randint(1, 4),
        "width": 16 * rng.randint(1, 4),
        "num_frames": 4 * rng.randint(0, 3) + 1,
        "num_inference_steps": rng.randint(1, 5),
        "guidance_scale": rng.choice([1.0, rng.uniform(1.5, 9.0)]),
        "max_sequence_length": rng.choice([8, 16, 32]),
        "flow_shift": rng.choice([None, rng.uniform(1.0, 8.0)]),
    }


@pytest.mark.parametrize("case", range(5))
def test_exact_parity_for_random_requests(wan_dir, case):
    request = random_request(random.Random(1000 + case))
    result = run_parity("wan_t2v", request=request, model_dir=wan_dir)
    verdict = result.verdict
    assert verdict.passed, verdict.summary_table()
    steps = request["num_inference_steps"]
    names = [c.name for c in verdict.checkpoints]
    assert [f"latents_step_{i:03d}" for i in range(steps)] == [n for n in names if n.startswith("latents_step")]
    assert ("negative_prompt_embeds" in names) == (request["guidance_scale"] > 1.0)
    for name in ("final_latents", "frames"):
        assert verdict.result(name).metrics.max_abs_diff <= 1e-6
    assert result.native["frames"].tensor.shape == (1, request["num_frames"], request["height"], request["width"], 3)


def corrupt_weight(folder, pick, scale=1e-2):
    f = next(folder.glob("*.safetensors"))
    state = load_file(str(f))
    key = pick(state)
    state[key] = state[key] + scale
    save_file(state, str(f))
    return key


def first_divergence(model_dir, **request):
    verdict = run_parity("wan_t2v", request=request, model_dir=model_dir, skip_component_gate=True).verdict
    assert not verdict.passed
    return verdict


def test_text_encoder_fault_shows_in_prompt_embeds(wan_copy):
    corrupt_weight(wan_copy / "converted" / "text_encoder", lambda s: "encoder.final_layer_norm.weight")
    assert first_divergence(wan_copy).first_divergence.name == "prompt_embeds"


def test_scheduler_shift_fault_shows_in_timesteps(wan_copy):
    path = wan_copy / "converted" / "scheduler" / "scheduler_config.json"
    config = json.loads(path.read_text())
    config["flow_shift"] = 5.0
    path.write_text(json.dumps(config))
    verdict = first_divergence(wan_copy)
    assert verdict.first_divergence.name == "timesteps"
    assert verdict.result("initial_latents").passed  # the noise itself is untouched


def test_transformer_fault_shows_after_step_one(wan_copy):
    corrupt_weight(wan_copy / "converted" / "transformer", lambda s: "proj_out.weight")
    verdict = first_divergence(wan_copy)
    assert verdict.first_divergence.name == "noise_cond_step_000"  # the model's own prediction, before guidance
    assert verdict.result("timestep_input_step_000").passed
    assert all(verdict.result(n).passed for n in ("prompt_embeds", "timesteps", "initial_latents"))


def test_vae_fault_shows_in_the_raw_decoder_output(wan_copy):
    corrupt_weight(wan_copy / "converted" / "vae", lambda s: next(k for k in sorted(s) if k.startswith("decoder")), 0.1)
    verdict = first_divergence(wan_copy)
    assert verdict.first_divergence.name == "decoder_output"
    assert verdict.result("final_latents").passed and verdict.result("decoder_input").passed


def test_pipeline_argument_fault_is_localized(wan_dir):
    """Guidance differing between the sides acts first in the first denoising step."""
    params = FAMILY.sampling_params()
    native, _ = run_native(wan_dir / "converted", params.replace(guidance_scale=4.0))
    reference = run_reference(FAMILY, wan_dir / "official", params, torch.device("cpu"))
    verdict = compare_captures(reference, native, mode="exact")
    assert verdict.first_divergence.step == 0  # the first checkpoint of step 0 carries the step's call arguments
    assert "guidance_scale" in verdict.first_divergence.reason


def test_manifest_fault_changes_nothing_numeric_but_class(wan_copy):
    """Metadata the T2V class ignores keeps parity; exact class resolution is what matters."""
    edit_manifest(wan_copy / "converted", expand_timesteps=False)
    assert run_parity("wan_t2v", model_dir=wan_copy).verdict.passed


def test_native_matches_the_golden_artifacts(wan_dir):
    golden, manifest = load_golden("wan_t2v", "tiny-ci")
    params = FAMILY.sampling_params("tiny-ci")
    assert manifest["parameters"] == params.to_json_dict()
    native, _ = run_native(wan_dir / "converted", params)
    verdict = regress("wan_t2v", "tiny-ci", native, model_dir=wan_dir)
    assert golden.names() == native.names() and verdict.passed, verdict.summary_table()


def test_cli_exit_codes_and_verdict_json(wan_dir, wan_copy, tmp_path, capsys):
    out = tmp_path / "verdict.json"
    assert main(["parity", "wan_t2v", "--model-dir", str(wan_dir), "--set", "seed=9", "--json", str(out),
                 "--report", str(tmp_path / "report.html")]) == 0
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["parameters"]["seed"] == 9
    assert {"torch", "diffusers", "transformers"} <= set(data["versions"])
    assert "data:image/png;base64," in (tmp_path / "report.html").read_text()
    corrupt_weight(wan_copy / "converted" / "transformer", lambda s: "proj_out.weight")
    capsys.readouterr()
    # The file-bound component gate refuses the changed weights first (one line, exit 2) ...
    assert main(["parity", "wan_t2v", "--model-dir", str(wan_copy), "--no-probes"]) == 2
    refused = capsys.readouterr().err.strip().splitlines()
    assert len(refused) == 1 and "model files differ from those component parity passed on: transformer" in refused[0]
    # ... and past it (debugging) the run names the divergence down to the module.
    assert main(["parity", "wan_t2v", "--model-dir", str(wan_copy), "--no-probes", "--skip-component-gate"]) == 1
    printed = capsys.readouterr().out
    assert "first divergence: noise_cond_step_000" in printed
    assert "drill-down (noise_cond_step_000, step 0, transformer): first divergent module transformer.proj_out" in printed


def test_fast_mode_within_tolerance_on_cpu(wan_dir):
    """bf16 + batched guidance + bf16 VAE vs the official bf16 recipe (runs on CPU for CI)."""
    verdict = run_parity("wan_t2v", mode="fast", model_dir=wan_dir).verdict
    assert verdict.passed, verdict.summary_table()
    assert verdict.result("final_latents").metrics.cosine >= 0.999
    assert verdict.result("latents_step_000").metrics.max_abs_diff > 0  # really a different computation
