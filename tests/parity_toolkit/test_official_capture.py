"""The shared official-pipeline capture helper against a hand-written capture of the same run:
Stable Audio's reference (legacy `callback`, its own wrappers) and HunyuanVideo's
(`callback_on_step_end`) record the same step latents; the scheduler-step wrapper sees
each update and its result; everything is undone afterwards."""

import torch

from workbench import registry
from workbench.families.official_capture import OfficialCapture
from workbench.references import ensure_reference


def test_legacy_callback_and_scheduler_wrapper_match_stable_audios_own_capture():
    family = registry.get_family("stable_audio")
    official = ensure_reference(family) / "official"
    params = family.sampling_params("tiny-ci")
    reference = family.reference
    pipe = reference.load_official(official, torch.device("cpu"))
    own, _ = reference.run_reference(official, params, pipe=pipe)   # its hand-written hooks

    with OfficialCapture(pipe) as cap:
        cap.wrap("prepare_latents").wrap_scheduler_step()
        kwargs = cap.step_callback()
        assert set(kwargs) == {"callback", "callback_steps"}   # StableAudioPipeline has only the legacy one
        pipe(prompt=params.prompt, negative_prompt=params.negative_prompt, audio_start_in_s=params.audio_start_in_s,
             audio_end_in_s=params.audio_end_in_s, num_inference_steps=params.num_inference_steps,
             guidance_scale=params.guidance_scale, generator=torch.Generator("cpu").manual_seed(int(params.seed)),
             output_type="pt", **kwargs)
    assert "prepare_latents" not in pipe.__dict__ and "step" not in pipe.scheduler.__dict__   # undone
    assert len(cap.steps) == len(cap.scheduler_calls) == params.num_inference_steps
    for (i, t, tensors), call in zip(cap.steps, cap.scheduler_calls):
        assert torch.equal(tensors["latents"], own[f"latents_step_{i:03d}"].tensor)
        assert torch.equal(call["prev_sample"], tensors["latents"])
    assert torch.equal(cap.last("prepare_latents"), own["initial_latents"].tensor)


def test_undone_when_the_pipeline_raises():
    family = registry.get_family("stable_audio")
    pipe = family.reference.load_official(ensure_reference(family) / "official", torch.device("cpu"))
    try:
        with OfficialCapture(pipe) as cap:
            cap.wrap("encode_prompt").module_inputs("transformer", ("encoder_hidden_states",))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "encode_prompt" not in pipe.__dict__ and not pipe.transformer._forward_pre_hooks
