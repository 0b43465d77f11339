"""Stable Audio parity: the official `StableAudioPipeline` and the native port, run on the same
tiny build and request, must agree at every checkpoint (exact mode: <= 1e-6 on CPU fp32), and a
fault planted in one converted component must show up first at the checkpoint that owns it."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from workbench import registry
from workbench.api.params import SamplingParam
from workbench.families.offline import quiet_hf
from workbench.parity.golden import load_golden, regress
from workbench.parity.runner import run_native, run_parity, run_reference
from workbench.references import ensure_reference, tree_sha256

# torchsde warns on every run that the official scheduler queries its Brownian tree at sigma 0
# and at float32(0.3) < sigma_min (both sides alike); diffusers' Oobleck VAE uses the old weight_norm.
pytestmark = [pytest.mark.parity, pytest.mark.filterwarnings("ignore:Should have:UserWarning"),
              pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")]

EXACT = 1e-6
STEP = ["timestep_input", "noise_cond", "noise_uncond", "noise_guided", "latents"]
CHECKPOINTS = ["prompt_embeds", "negative_prompt_embeds", "seconds_start_hidden_states", "seconds_end_hidden_states",
               "text_audio_duration_embeds", "audio_duration_embeds", "rotary_embedding", "timesteps", "sigmas",
               "initial_latents", *(f"{what}_step_{i:03d}" for i in range(4) for what in STEP), "final_latents",
               "decoder_input", "decoder_output", "waveform"]


@pytest.fixture(scope="module")
def family():
    return registry.get_family("stable_audio")


@pytest.fixture(scope="module")
def model_dir(family):
    quiet_hf()
    return ensure_reference(family)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def test_tiny_ci_every_checkpoint_matches(family, model_dir):
    """Read the tensors directly, independent of the verdict code."""
    params = family.sampling_params()
    native, _ = run_native(model_dir / "converted", params, "cpu")
    reference = run_reference(family, model_dir / "official", params, torch.device("cpu"))
    assert reference.names() == native.names() == CHECKPOINTS
    for checkpoint in reference:
        assert checkpoint.kind == native[checkpoint.name].kind
        assert max_diff(checkpoint.tensor, native[checkpoint.name].tensor) <= EXACT, checkpoint.name
    assert native["waveform"].tensor.shape == (1, 2, 31)
    assert native["text_audio_duration_embeds"].tensor.shape == (2, 32 + 2, 4)  # [uncond, cond], text + 2 seconds


def _random_requests(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        start = round(rng.uniform(0.0, 1.8), 3)
        out.append({"seed": rng.randrange(2**63), "audio_start_in_s": start,
                    "audio_end_in_s": round(rng.uniform(start + 0.05, 2.0), 3),
                    "num_inference_steps": rng.randint(1, 6), "guidance_scale": round(rng.uniform(0.0, 12.0), 2),
                    "prompt": rng.choice(["thunder over the ocean, dramatic", "a bird singing at sunset", "kalo mi"]),
                    "negative_prompt": rng.choice([None, "", "low quality"])})
    return out


@pytest.mark.parametrize("request_", [
    {"negative_prompt": None},  # guidance against all-zero conditioning
    {"guidance_scale": 1.0, "seed": 11},  # no guidance: one branch, negative prompt ignored
    {"prompt": ["a dog barking", "rain on a roof"], "negative_prompt": ["noisy", "low quality"], "seed": 5},
    {"prompt": ["a dog barking", "rain on a roof"], "negative_prompt": None, "seed": 5},
    {"audio_end_in_s": None, "prompt": "a drummer " * 40},  # model-maximum window; truncated prompt
    *_random_requests(4),
], ids=lambda r: json.dumps(r)[:60])
def test_exact_parity_for_requests(family, model_dir, request_):
    run = run_parity("stable_audio", request=request_, model_dir=model_dir, mode="exact")
    assert run.reference.names() == run.native.names()
    assert run.verdict.passed, run.verdict.summary_table()
    assert max(max_diff(c.tensor, run.native[c.name].tensor) for c in run.reference) <= EXACT
    if run.params.audio_end_in_s is not None:  # 16 Hz; the tiny decoder returns 31 samples
        start, end = int(run.params.audio_start_in_s * 16), min(int(run.params.audio_end_in_s * 16), 31)
        assert run.native["waveform"].tensor.shape[-1] == end - start


def test_solver_noise_is_part_of_the_comparison(family, model_dir):
    """The SDE solver's Brownian noise is seeded from the generator: another seed for it alone
    must diverge right at the first step, with the same initial latents."""
    from workbench.api.generate import load_pipeline

    pipe = load_pipeline(model_dir / "converted", device="cpu", progress=False)
    denoise = pipe.stage("DenoisingStage")
    original = denoise.step_kwargs
    denoise.step_kwargs = lambda batch: {"generator": torch.Generator("cpu").manual_seed(batch.seed + 1)}
    try:
        verdict = run_parity("stable_audio", model_dir=model_dir, mode="exact").verdict
    finally:
        denoise.step_kwargs = original
    assert verdict.first_divergence.name == "latents_step_000"
    assert verdict.result("initial_latents").passed


def _edit_tensor(path: Path, key: str, delta: float) -> None:
    state = load_file(str(path))
    state[key] = state[key] + delta
    save_file(state, str(path), metadata={"format": "pt"})


def _edit_json(path: Path, key: str, value) -> None:
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data))


FAULTS = {
    "text_encoder": (lambda c: _edit_tensor(c / "text_encoder" / "model.safetensors",
                                            "encoder.block.0.layer.0.SelfAttention.q.weight", 0.05),
                     "prompt_embeds"),
    "scheduler": (lambda c: _edit_json(c / "scheduler" / "scheduler_config.json", "sigma_max", 250.0), "timesteps"),
    "transformer": (lambda c: _edit_tensor(c / "transformer" / "diffusion_pytorch_model.safetensors",
                                           "proj_out.weight", 0.05), "noise_cond_step_000"),
    "vae": (lambda c: _edit_tensor(c / "vae" / "diffusion_pytorch_model.safetensors", "decoder.conv1.bias", 0.05),
            "decoder_output"),
}


@pytest.mark.parametrize("component", sorted(FAULTS))
def test_fault_is_localized(model_dir, tmp_path, component):
    """Like `workbench parity stable_audio --model-dir DIR` on a copy with one edit in converted/."""
    plant, expected = FAULTS[component]
    faulty = tmp_path / "model"
    shutil.copytree(model_dir, faulty)
    plant(faulty / "converted")  # the official side stays as built
    run = run_parity("stable_audio", model_dir=faulty, mode="exact", skip_component_gate=True)
    assert run.verdict.first_divergence.name == expected
    if component == "vae":
        assert run.verdict.result("final_latents").passed
        assert max_diff(run.reference["final_latents"].tensor, run.native["final_latents"].tensor) == 0.0


def test_native_matches_golden(family, model_dir):
    golden, manifest = load_golden("stable_audio", "tiny-ci")
    fields = set(SamplingParam.field_names())
    params = SamplingParam.resolve({k: v for k, v in manifest["parameters"].items() if k in fields})
    assert params == family.sampling_params("tiny-ci")
    native, _ = run_native(model_dir / "converted", params, "cpu")
    assert golden.names() == native.names() == CHECKPOINTS
    verdict = regress("stable_audio", "tiny-ci", native, model_dir=model_dir)
    assert verdict.passed, verdict.summary_table()


def test_build_is_byte_identical_across_processes(family, model_dir, tmp_path):
    """`workbench build-reference` in a fresh process writes the same bytes as this process's build."""
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "build"
    subprocess.run([sys.executable, "-m", "workbench.cli", "build-reference", "stable_audio", "--out", str(out)],
                   check=True, env=env, cwd=root, capture_output=True)
    for side in ("official", "converted"):
        assert tree_sha256(out / side) == tree_sha256(model_dir / side), side
