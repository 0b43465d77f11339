"""Wan 2.1 smoke: imports, registry, presets, official defaults, a real tiny generation."""

import json

import numpy as np
import pytest
import torch

from workbench import registry
from workbench.api.generate import generate, load_pipeline
from workbench.errors import StageVerificationError
from workbench.families.wan.config import WAN_T2V
from workbench.families.wan.pipeline import NativeWanPipeline, prompt_clean
from workbench.runtime.manifest import read_manifest


def test_registry_resolves_the_native_class(wan_dir):
    manifest = read_manifest(wan_dir / "converted")
    assert registry.resolve_pipeline_class(manifest) is NativeWanPipeline
    assert registry.family_for_manifest(manifest, wan_dir / "converted") is WAN_T2V
    assert manifest.raw["_official_class_name"] == "WanPipeline"


def test_official_defaults_are_sourced():
    d = WAN_T2V.defaults
    assert (d["height"].value, d["width"].value, d["num_frames"].value) == (480, 832, 81)
    assert d["num_inference_steps"].value == 50 and d["guidance_scale"].value == 5.0
    assert all("pipeline_wan.py" in s.source for s in d.values())


def test_presets():
    names = [p.name for p in registry.PRESETS.for_family("wan_t2v")]
    assert names == ["tiny-ci", "wan2.1-1.3b-480p"]
    hd = WAN_T2V.sampling_params("wan2.1-1.3b-480p")
    assert (hd.height, hd.width, hd.num_frames, hd.flow_shift, hd.fps) == (480, 832, 81, 3.0, 16)


def test_prompt_clean_matches_official():
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean as official

    for text in ["  a  cat\n\twalks ", "fish &amp;amp; chips", "tab\tand   spaces"]:
        assert prompt_clean(text) == official(text)


def test_tiny_generation_writes_video_and_metadata(wan_dir, tmp_path):
    result = generate("wan_t2v", device="cpu", out=tmp_path / "v.mp4", frames_dir=tmp_path / "frames",
                      request={"seed": 3}, progress=False)
    assert result.output.shape == (1, 9, 32, 32, 3)
    assert 0.0 <= float(result.output.min()) and float(result.output.max()) <= 1.0
    assert (tmp_path / "v.mp4").stat().st_size > 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 9
    meta = json.loads((tmp_path / "v.mp4.json").read_text())
    assert meta["media"] == {"height": 32, "width": 32, "num_frames": 9, "fps": 8}
    assert meta["parameters"]["seed"] == 3
    assert list(result.stage_timings) == load_pipeline(wan_dir / "converted", device="cpu").stage_names


def test_cached_pipeline_is_rebuilt_when_a_weight_file_changes(broken_copy, perturb_weight):
    import os

    from workbench.api import generate as api

    converted = broken_copy("wan_t2v") / "converted"
    first = load_pipeline(converted, device="cpu", progress=False)
    assert load_pipeline(converted, device="cpu", progress=False) is first  # same files: the cached one
    weights = next((converted / "transformer").glob("*.safetensors"))
    perturb_weight(converted / "transformer", "proj_out.bias")
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # coarse clocks
    second = load_pipeline(converted, device="cpu", progress=False)
    assert second is not first
    assert not torch.equal(second.transformer.proj_out.bias, first.transformer.proj_out.bias)
    assert all(p is not first for _, p in api._PIPELINES.values())  # the stale pipeline is not kept


def test_mp4_without_ffmpeg_plugin_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    from workbench.errors import ParameterError
    from workbench.media import write_video

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "imageio_ffmpeg" else real(name, *a))
    frames = torch.rand(3, 8, 8, 3)
    with pytest.raises(ParameterError, match=r"v\.mp4: mp4 needs the imageio-ffmpeg package"):
        write_video(frames, tmp_path / "v.mp4", fps=8)
    assert not (tmp_path / "v.mp4").exists()
    from PIL import Image

    with Image.open(write_video(frames, tmp_path / "v.gif", fps=8)) as gif:  # gif needs only Pillow
        assert gif.n_frames == 3 and abs(gif.info["duration"] - 125) <= 10  # GIF stores centiseconds


def test_seed_changes_output_and_same_seed_repeats(wan_dir):
    a = generate("wan_t2v", device="cpu", request={"seed": 1}, progress=False).output
    b = generate("wan_t2v", device="cpu", request={"seed": 1}, progress=False).output
    c = generate("wan_t2v", device="cpu", request={"seed": 2}, progress=False).output
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("request_, field", [
    ({"height": 40}, "height"),
    ({"num_frames": 8}, "num_frames"),
    ({"guidance_scale_2": 3.0}, "guidance_scale_2"),
    ({"prompt": None}, "prompt"),
    ({"num_inference_steps": 0}, "num_inference_steps"),
])
def test_bad_requests_name_the_field(wan_dir, request_, field):
    with pytest.raises(StageVerificationError) as err:
        generate("wan_t2v", device="cpu", request=request_, progress=False)
    assert err.value.field == field


def test_stage_override_switches_to_batched_cfg(wan_dir):
    seq = generate("wan_t2v", device="cpu", progress=False).output
    bat = generate("wan_t2v", device="cpu", request={"stage_overrides": [("DenoisingStage", "cfg", "batched")]},
                   progress=False).output
    # Batched CFG is the same maths in another call order: equal to float noise, not a different video.
    assert np.allclose(seq.numpy(), bat.numpy(), atol=1e-4)
    pipe = load_pipeline(wan_dir / "converted", device="cpu")
    assert pipe.stage("DenoisingStage").cfg == "sequential"  # restored after the run
