"""Stable Audio smoke tests: registration, presets, official defaults, a real load-and-generate on
the tiny build, and clear errors (exit 2, no traceback) for bad requests."""

from __future__ import annotations

import inspect
import json
import shutil

import pytest
import soundfile as sf
import torch

from workbench import cli, registry
from workbench.api.generate import generate
from workbench.api.workload import AudioMedia, WorkloadType
from workbench.errors import ManifestError, StageVerificationError
from workbench.families.offline import quiet_hf
from workbench.families.stable_audio.pipeline import NativeStableAudioPipeline
from workbench.references import ensure_reference
from workbench.runtime.manifest import read_manifest
from workbench.runtime.pipeline import ComposedPipeline

# The official scheduler queries its Brownian tree at sigma 0 and at float32(0.3) < sigma_min;
# torchsde warns about both on every run, on both sides alike.
pytestmark = [pytest.mark.filterwarnings("ignore:Should have:UserWarning"),
              pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")]

STAGES = ["InputValidationStage", "TextEncodingStage", "TextDurationConditioningStage", "TimestepPreparationStage",
          "LatentPreparationStage", "DenoisingStage", "DecodingStage"]


@pytest.fixture(scope="module")
def family():
    return registry.get_family("stable_audio")


@pytest.fixture(scope="module")
def model_dir(family):
    quiet_hf()
    return ensure_reference(family)


def test_registered_with_presets(family):
    assert family.pipeline_class is NativeStableAudioPipeline
    assert family.workload is WorkloadType.T2A and family.output_kind == "waveform"
    assert family.official_pipeline == "diffusers.StableAudioPipeline"
    names = {p.name for p in registry.PRESETS.for_family("stable_audio")}
    assert names == {"tiny-ci", "stable-audio-open-1.0"}
    assert family.preset().name == "tiny-ci"


def test_manifests_resolve_to_the_native_class_and_family(model_dir):
    converted = read_manifest(model_dir / "converted")
    assert converted.class_name == "NativeStableAudioPipeline"
    assert converted.raw["_official_class_name"] == "StableAudioPipeline"
    # diffusers records the projection model by its pipeline folder; the converted manifest by its library.
    assert read_manifest(model_dir / "official").raw["projection_model"] == ["stable_audio", "StableAudioProjectionModel"]
    assert converted.raw["projection_model"] == ["diffusers", "StableAudioProjectionModel"]
    assert registry.resolve_pipeline_class(converted) is NativeStableAudioPipeline
    for side in ("official", "converted"):
        assert registry.family_for_manifest(read_manifest(model_dir / side), model_dir / side).name == "stable_audio"


def test_defaults_are_the_official_signature(family):
    from diffusers import StableAudioPipeline

    signature = inspect.signature(StableAudioPipeline.__call__).parameters
    for name in ("num_inference_steps", "guidance_scale", "audio_start_in_s", "audio_end_in_s", "negative_prompt"):
        assert family.defaults[name].value == signature[name].default, name
        assert "pipeline_stable_audio.py" in family.defaults[name].source


def test_official_preset_follows_the_docstring_example(family):
    from diffusers.pipelines.stable_audio import pipeline_stable_audio

    example = pipeline_stable_audio.EXAMPLE_DOC_STRING
    params = family.sampling_params("stable-audio-open-1.0")
    assert f'prompt = "{params.prompt}"' in example
    assert f'negative_prompt = "{params.negative_prompt}"' in example
    assert f"audio_end_in_s={params.audio_end_in_s}" in example
    assert (params.num_inference_steps, params.guidance_scale, params.audio_start_in_s) == (100, 7.0, 0.0)


@pytest.mark.parametrize("scale, max_seconds", [("tiny", 2.0), ("full", 47.55)])
def test_reference_sizes_fit_together(scale, max_seconds):
    """The components a build wires together agree on their shared dimensions (full: stable-audio-open-1.0,
    up to 47.55 s). Built on the meta device: constructors and configs only, no weights."""
    from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioProjectionModel
    from transformers import T5Config

    from workbench.families.stable_audio import reference as ref

    with torch.device("meta"):
        transformer = StableAudioDiTModel(**ref.TRANSFORMER_SIZES[scale]).config
        projection = StableAudioProjectionModel(**ref.PROJECTION_SIZES[scale]).config
        vae = AutoencoderOobleck(**ref.VAE_SIZES[scale])
    assert projection.text_encoder_dim == T5Config(**ref.TEXT_ENCODER_SIZES[scale]).d_model
    assert projection.conditioning_dim == transformer.cross_attention_input_dim
    assert transformer.global_states_input_dim == 2 * projection.conditioning_dim
    assert vae.config.decoder_input_channels == transformer.in_channels == transformer.out_channels
    assert transformer.sample_size * vae.hop_length / vae.config.sampling_rate == pytest.approx(max_seconds, abs=5e-3)


def test_precedence_defaults_preset_request(family):
    params = family.sampling_params(request={"seed": 3, "audio_end_in_s": 1.5})
    assert (params.seed, params.audio_end_in_s, params.num_inference_steps, params.guidance_scale) == (3, 1.5, 4, 7.0)
    assert params.audio_start_in_s == 0.0 and params.negative_prompt == "low quality, noisy"


def test_load_and_generate_writes_wav_with_sidecar(model_dir, tmp_path):
    pipe = ComposedPipeline.from_pretrained(model_dir / "converted", device="cpu", progress=False)
    assert isinstance(pipe, NativeStableAudioPipeline) and pipe.stage_names == STAGES
    assert pipe.max_audio_length_in_s == 2.0  # sample_size 16 x hop 2 / 16 Hz

    result = generate("stable_audio", out=tmp_path / "clip.wav", device="cpu", progress=False)
    waveform = result.output
    assert waveform.shape == (1, 2, 31) and torch.isfinite(waveform).all()  # the tiny decoder returns 31 of 32
    assert result.media == AudioMedia(audio_seconds=31 / 16, sampling_rate=16, channels=2)
    info = sf.info(str(tmp_path / "clip.wav"))
    assert (info.samplerate, info.channels, info.frames) == (16, 2, 31)
    written, _ = sf.read(str(tmp_path / "clip.wav"), dtype="float32", always_2d=True)
    assert torch.allclose(torch.from_numpy(written).T, waveform[0].clamp(-1, 1), atol=1 / 2**15)
    sidecar = json.loads((tmp_path / "clip.wav.json").read_text())
    assert sidecar["media"] == {"audio_seconds": 31 / 16, "sampling_rate": 16, "channels": 2}
    assert sidecar["parameters"]["prompt"] == "a drummer playing in the rain"


def test_cli_generate(model_dir, tmp_path, capsys):
    assert cli.main(["generate", "stable_audio", "--out", str(tmp_path / "c.wav"), "--device", "cpu",
                     "--model-dir", str(model_dir), "--set", "audio_end_in_s=1.0"]) == 0
    assert sf.info(str(tmp_path / "c.wav")).frames == 16
    assert f"wrote {tmp_path / 'c.wav'}" in capsys.readouterr().out


@pytest.mark.parametrize("assignments, field, expected", [
    (["audio_start_in_s=1.0", "audio_end_in_s=1.0"], "audio_end_in_s", "greater than audio_start_in_s=1.0"),
    (["audio_start_in_s=1.5", "audio_end_in_s=0.5"], "audio_end_in_s", "greater than audio_start_in_s=1.5"),
    (["audio_end_in_s=2.5"], "audio_end_in_s", "at most the model's maximum of 2 s"),
    (["audio_start_in_s=-0.5"], "audio_start_in_s", "a finite number in [0.0, inf]"),
    (["audio_end_in_s=-1"], "audio_end_in_s", "None or a finite number in [0.0, inf]"),
    (["prompt=  "], "prompt", "a non-empty prompt when guidance_scale > 1"),
    (["sampling_rate=44100"], "sampling_rate", "the model's 16"),
    (["channels=1"], "channels", "the model's 2"),
    (["height=64"], "height", "None (Stable Audio does not use it)"),
    (["max_sequence_length=16"], "max_sequence_length", "None (prompts are padded"),
])
def test_cli_bad_request_is_a_clear_error(model_dir, tmp_path, capsys, assignments, field, expected):
    args = ["generate", "stable_audio", "--out", str(tmp_path / "x.wav"), "--device", "cpu",
            "--model-dir", str(model_dir)]
    for item in assignments:
        args += ["--set", item]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"field '{field}' expected {expected}" in err
    assert not (tmp_path / "x.wav").exists()


def test_empty_prompt_is_fine_without_guidance(model_dir):
    result = generate("stable_audio", request={"prompt": "", "guidance_scale": 1.0}, device="cpu",
                      model_dir=model_dir, progress=False)
    assert result.output.shape == (1, 2, 31)


def test_negative_prompt_must_match_the_prompt_type(model_dir):
    with pytest.raises(StageVerificationError, match="negative_prompt.*the same type as prompt"):
        generate("stable_audio", request={"prompt": ["a", "b"], "negative_prompt": "noisy"}, device="cpu",
                 model_dir=model_dir, progress=False)


def test_missing_module_is_named(model_dir, tmp_path):
    broken = tmp_path / "converted"
    shutil.copytree(model_dir / "converted", broken)
    manifest = json.loads((broken / "model_index.json").read_text())
    del manifest["projection_model"]
    (broken / "model_index.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=r"missing \['projection_model'\]"):
        ComposedPipeline.from_pretrained(broken, device="cpu")
