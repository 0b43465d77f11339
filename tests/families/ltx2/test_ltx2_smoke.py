"""LTX-2 smoke tests: registration and sourced defaults, request validation, and the
`generate` path writing one muxed mp4 or a paired mp4 + wav."""

from __future__ import annotations

import inspect
import json
import re
import subprocess

import pytest
import soundfile as sf
import torch

from workbench import registry
from workbench.api.generate import generate, load_pipeline
from workbench.api.params import SamplingParam
from workbench.api.workload import WorkloadType
from workbench.cli import main as cli
from workbench.errors import ParameterError, StageVerificationError
from workbench.families.ltx2.reference import CALL_KWARGS
from workbench.runtime.batch import ForwardBatch


def official():
    from diffusers import LTX2Pipeline

    return LTX2Pipeline


# ---- registration and defaults ----------------------------------------------------------------
def test_family_is_registered_as_joint_audio_video(family):
    assert family.workload is WorkloadType.T2AV and family.output_kind == "joint"
    assert registry.PIPELINE_CLASSES["NativeLTX2Pipeline"] is family.pipeline_class
    names = {p.name for p in registry.PRESETS.for_family("ltx2")}
    assert {"tiny-ci", "ltx2-official"} <= names
    tiny = family.sampling_params("tiny-ci")
    assert (tiny.height, tiny.width, tiny.num_frames, tiny.frame_rate, tiny.num_inference_steps,
            tiny.max_sequence_length, tiny.spatio_temporal_guidance_blocks) == (32, 32, 9, 24.0, 3, 16, [1])


def test_official_defaults_are_the_official_call_defaults(family):
    signature = inspect.signature(official().__call__).parameters
    source = inspect.getsource(official().__call__)
    for name, sourced in family.defaults.items():
        default = signature[name].default
        if default is not None:
            assert sourced.value == default, name
    # The two defaults the signature leaves as None are set in the body.
    assert "num_frames = 121" in source and family.defaults["num_frames"].value == 121
    assert 'negative_prompt = negative_prompt or ""' in inspect.getsource(official().encode_prompt)
    for term in ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale"):
        assert f"audio_{term} = audio_{term} or {term}" in source


def test_generation_kwargs_are_declared_with_the_official_names():
    official_kwargs = set(inspect.signature(official().__call__).parameters)
    for name in CALL_KWARGS:
        assert name in official_kwargs, name
        assert name in SamplingParam.field_names(), name
        assert name in ForwardBatch.field_names(), name


def test_an_unknown_kwarg_names_the_nearest_declared_one(family):
    with pytest.raises(ParameterError, match="stg_scale"):
        family.sampling_params(request={"stg_scal": 2.0})


# ---- request validation (the input stage only: no model run) ------------------------------
@pytest.mark.parametrize("request_, field", [
    ({"height": 48}, "height"),
    ({"num_frames": 10}, "num_frames"),                      # not on the VAE's 2k+1 grid
    ({"num_inference_steps": 1}, "num_inference_steps"),     # shift_terminal needs two sigmas
    ({"spatio_temporal_guidance_blocks": None}, "spatio_temporal_guidance_blocks"),
    ({"spatio_temporal_guidance_blocks": [2]}, "spatio_temporal_guidance_blocks"),  # 2-block model
    ({"fps": 12}, "fps"),
    ({"sampling_rate": 44100}, "sampling_rate"),
    ({"guidance_rescale": 1.5}, "guidance_rescale"),
    ({"motion_speed": 0}, "motion_speed"),
])
def test_invalid_requests_name_the_field(family, model_dir, request_, field):
    pipe = load_pipeline(model_dir / "converted", device="cpu", progress=False)
    batch = family.sampling_params(request=request_).to_batch()
    with pytest.raises(StageVerificationError) as error:
        pipe.stage("InputValidationStage")(batch)
    assert error.value.field == field


def test_stg_blocks_are_not_checked_when_stg_is_off(family, model_dir):
    pipe = load_pipeline(model_dir / "converted", device="cpu", progress=False)
    batch = family.sampling_params(request={"stg_scale": 0.0, "audio_stg_scale": 0.0,
                                            "spatio_temporal_guidance_blocks": [28]}).to_batch()
    batch = pipe.stage("InputValidationStage")(batch)
    assert (batch.sampling_rate, batch.channels) == (16000, 2)  # filled from the vocoder


# ---- writing media ---------------------------------------------------------------------------
def streams(path) -> list[str]:
    import imageio_ffmpeg

    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                           capture_output=True, text=True)
    return [line.strip() for line in probe.stderr.splitlines() if re.search(r"Stream #\d", line)]


def test_generate_writes_one_mp4_with_its_audio_track(model_dir, tmp_path):
    out = tmp_path / "clip.mp4"
    assert cli(["generate", "ltx2", "--out", str(out), "--model-dir", str(model_dir), "--device", "cpu"]) == 0
    found = streams(out)
    assert len(found) == 2
    assert "Video: h264" in found[0] and "32x32" in found[0] and "24 fps" in found[0]
    assert "Audio: aac" in found[1] and "16000 Hz" in found[1] and "stereo" in found[1]
    media = json.loads((tmp_path / "clip.mp4.json").read_text())["media"]
    assert media == {"video": {"height": 32, "width": 32, "num_frames": 9, "fps": 24.0},
                     "audio": {"audio_seconds": 132 / 16000, "sampling_rate": 16000, "channels": 2},
                     "muxed": True}


def test_generate_paired_writes_mp4_and_wav(model_dir, tmp_path):
    result = generate("ltx2", device="cpu", model_dir=model_dir, out=tmp_path / "clip.mp4", paired=True,
                      progress=False)
    assert [p.name for p in result.paths] == ["clip.mp4", "clip.wav", "clip.mp4.json"]
    assert len(streams(tmp_path / "clip.mp4")) == 1
    wav, rate = sf.read(tmp_path / "clip.wav", dtype="float32")
    assert rate == 16000 and wav.shape == (132, 2)
    assert torch.allclose(torch.from_numpy(wav).T, result.audio[0].clamp(-1, 1), atol=1 / 32767 + 1e-6)
    assert result.output.shape == (1, 9, 32, 32, 3)
    assert result.media.muxed is False and result.media.audio.sampling_rate == 16000


def test_paired_needs_a_joint_family():
    with pytest.raises(ParameterError, match="joint"):
        generate("wan_t2v", paired=True)
