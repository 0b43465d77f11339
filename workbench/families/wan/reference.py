"""The official reference: diffusers' `WanPipeline`, built offline and run with stage capture.

`build_reference(out, scale)` writes `out/official` (diffusers `save_pretrained`) and
`out/converted` (the same files, with a manifest naming our native class).
`run_reference(official_dir, params)` runs the official pipeline and records the same
checkpoints the native pipeline records, in the same order. The Wan 2.2 and Wan I2V
references build on the component builders and the capture here.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from workbench.api.params import SamplingParam
from workbench.families.offline import load_official_pipeline, seeded, t5_tokenizer
from workbench.parity.capture import CaptureSet, step_checkpoint
from workbench.runtime.stages import first_output, model_timestep, timestep_value, watch_decode
from workbench.trace.context import set_step

OFFICIAL_CLASS = "WanPipeline"
NATIVE_CLASS = "NativeWanPipeline"

# Sizes: `tiny` for CPU/CI (offline_references.md); `full` = Wan2.1-T2V-1.3B architecture.
TRANSFORMER_SIZES = {
    "tiny": dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
                 out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", rope_max_seq_len=32),
    "full": dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                 out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
}
TEXT_ENCODER_SIZES = {
    "tiny": dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                 relative_attention_max_distance=16),
    # umt5-xxl encoder
    "full": dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                 relative_attention_num_buckets=32, relative_attention_max_distance=128),
}
VAE_SIZES = {
    "tiny": dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                 temperal_downsample=[False, True, True]),
    "full": dict(),  # the constructor defaults are the released Wan 2.1 VAE
}
TOKENIZER_MAX_LENGTH = {"tiny": 64, "full": 512}
# What the Wan 2.1 diffusers releases ship (scheduler_config.json): flow UniPC, shift 3.0.
SCHEDULER_CONFIG = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0,
                        num_train_timesteps=1000)


def init_device(scale: str) -> str:
    """Where weights are initialised: the full sizes take seconds on a GPU and minutes on a
    CPU. Tiny builds always stay on the CPU (byte-identical builds)."""
    return "cuda" if scale == "full" and torch.cuda.is_available() else "cpu"


def build_components(scale: str = "tiny") -> dict:
    """Tokenizer, UMT5 text encoder, VAE and scheduler: the parts every Wan pipeline shares.

    Each module is seeded on its own (text encoder 0, VAE 3), so weights do not depend on
    which pipeline is built or in what order.
    """
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = t5_tokenizer(TOKENIZER_MAX_LENGTH[scale])
    with torch.device(init_device(scale)):
        seeded(0)
        text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), feed_forward_proj="gated-gelu",
                                                   dropout_rate=0.0, is_encoder_decoder=False,
                                                   **TEXT_ENCODER_SIZES[scale])).eval()
        seeded(3)
        vae = AutoencoderKLWan(**VAE_SIZES[scale]).eval()
    if scale == "full":
        # 5.7B parameters: kept in bf16 (11 GB on disk instead of 23), the dtype it runs in on GPUs.
        text_encoder.to(torch.bfloat16)
    return dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                scheduler=UniPCMultistepScheduler(**SCHEDULER_CONFIG))


def build_transformer(config: dict, seed: int, scale: str = "tiny"):
    from diffusers import WanTransformer3DModel

    with torch.device(init_device(scale)):
        seeded(seed)
        return WanTransformer3DModel(**config).eval()


def build_official(scale: str = "tiny", transformer_2: bool = False, boundary_ratio: float | None = None,
                   transformer_sizes: dict = TRANSFORMER_SIZES):
    """The official diffusers pipeline from seeded random-init components (transformer seed 1, transformer_2 seed 2)."""
    from diffusers import WanPipeline

    components = build_components(scale)
    transformer = build_transformer(transformer_sizes[scale], seed=1, scale=scale)
    second = build_transformer(transformer_sizes[scale], seed=2, scale=scale) if transformer_2 else None
    return WanPipeline(**components, transformer=transformer, transformer_2=second, boundary_ratio=boundary_ratio)


def save_reference(pipe, out: Path, native_class: str) -> Path:
    """Write `out/official` and `out/converted` for a built official pipeline."""
    from workbench.families.conversion import write_converted

    pipe.save_pretrained(out / "official", safe_serialization=True)
    write_converted(out / "official", out / "converted", native_class)
    return out


def build_reference(out: Path, scale: str = "tiny") -> Path:
    """Write `out/official` and `out/converted` (byte-identical across processes)."""
    return save_reference(build_official(scale), out, NATIVE_CLASS)


def load_official(official_dir: Path, device: torch.device, dtype: torch.dtype | None = None,
                  fp32_modules: tuple[str, ...] = (), pipeline_class: str = OFFICIAL_CLASS):
    """The official pipeline as a user loads it (fast mode keeps the VAE fp32, per the Wan docs)."""
    return load_official_pipeline(pipeline_class, official_dir, device, dtype, fp32_modules)


def apply_request_config(pipe, params: SamplingParam) -> None:
    """Request fields that the official pipeline reads from its configuration, set the official way.

    `flow_shift` lives in the scheduler config (EXAMPLE_DOC_STRING:
    `UniPCMultistepScheduler.from_config(config, flow_shift=...)`); `boundary_ratio` lives in
    the pipeline config (`self.config.boundary_ratio`), so a requested one is registered
    there, exactly as the native side lets the request win over the manifest.
    """
    if params.flow_shift is not None and pipe.scheduler.config.flow_shift != params.flow_shift:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=params.flow_shift)
    if params.boundary_ratio is not None and pipe.config.boundary_ratio != params.boundary_ratio:
        pipe.register_to_config(boundary_ratio=params.boundary_ratio)


def run_reference(official_dir: Path, params: SamplingParam, device: torch.device = torch.device("cpu"),
                  pipe=None) -> tuple[CaptureSet, torch.Tensor]:
    """Run the official pipeline with `params`; return its checkpoints and frames [B,F,H,W,3]."""
    return run_official(pipe or load_official(official_dir, device), params)


def run_official(pipe, params: SamplingParam, seen: dict | None = None,
                 **call_kwargs) -> tuple[CaptureSet, torch.Tensor]:
    """Call a loaded official Wan pipeline and record its checkpoints in the native pipeline order.

    `call_kwargs` are extra call arguments (the I2V `image`); `seen` may already hold
    checkpoints a caller records with its own hooks (`image_embeds`). A `prepare_latents`
    that also returns the image condition (I2V) gives `image_latents`.
    """
    apply_request_config(pipe, params)
    seen = {} if seen is None else seen
    steps: list = []
    prepare_latents = pipe.prepare_latents

    def capture_initial(*args, **kwargs):
        out = prepare_latents(*args, **kwargs)
        latents, condition = out if isinstance(out, tuple) else (out, None)
        seen["initial_latents"] = latents.clone()
        if condition is not None:
            seen["image_latents"] = condition.clone()
        return out

    boundary = pipe.config.boundary_ratio
    # Every denoiser call of the current step (in call order: cond, then uncond under guidance)
    # and the guided prediction the scheduler receives, read by hooks around the official loop.
    calls: list = []
    guided: list = []

    def on_denoiser_call(module, args, kwargs, output):
        calls.append((model_timestep(args, kwargs), first_output(output)))

    scheduler_class = type(pipe.scheduler)
    scheduler_step = scheduler_class.step

    @functools.wraps(scheduler_step)  # the official reads step's signature (generator)
    def step_recording_guided(self, model_output, *args, **kwargs):
        guided.append(model_output)
        return scheduler_step(self, model_output, *args, **kwargs)

    def on_step_end(pipeline, i, t, tensors):
        if i == 0:
            seen["prompt_embeds"] = tensors["prompt_embeds"]
            seen["negative_prompt_embeds"] = tensors.get("negative_prompt_embeds")
        second = boundary is not None and t < boundary * pipeline.scheduler.config.num_train_timesteps
        scale = (pipeline._guidance_scale_2 if second else pipeline._guidance_scale)
        branches = dict(zip(("noise_cond", "noise_uncond"), (out.clone() for _, out in calls)))
        timestep = timestep_value(calls[0][0]).clone() if calls and calls[0][0] is not None else None
        steps.append((i, t, tensors["latents"].clone(),
                      {"expert": "transformer_2" if second else "transformer", "guidance_scale": float(scale)},
                      timestep, branches, guided[-1].clone()))
        calls.clear()
        set_step(i + 1)  # the step context the native loop sets (drill-down and traces read it)
        return {}

    kwargs = dict(prompt=params.prompt, negative_prompt=params.negative_prompt, height=params.height,
                  width=params.width, num_frames=params.num_frames, num_inference_steps=params.num_inference_steps,
                  guidance_scale=params.guidance_scale, max_sequence_length=params.max_sequence_length,
                  generator=torch.Generator("cpu").manual_seed(int(params.seed)), output_type="np",
                  callback_on_step_end=on_step_end,
                  callback_on_step_end_tensor_inputs=["latents", "prompt_embeds", "negative_prompt_embeds"],
                  **call_kwargs)
    if params.guidance_scale_2 is not None:
        kwargs["guidance_scale_2"] = params.guidance_scale_2
    pipe.prepare_latents = capture_initial
    handles = [module.register_forward_hook(on_denoiser_call, with_kwargs=True)
               for module in (pipe.transformer, getattr(pipe, "transformer_2", None)) if module is not None]
    undo_decode = watch_decode(pipe.vae, seen)
    scheduler_class.step = step_recording_guided
    set_step(0)
    try:
        frames = torch.from_numpy(pipe(**kwargs).frames)
    finally:
        set_step(None)
        scheduler_class.step = scheduler_step
        undo_decode()
        for handle in handles:
            handle.remove()
        del pipe.prepare_latents

    capture = CaptureSet()
    if "image_embeds" in seen:
        capture.record("image_embeds", seen["image_embeds"], "embedding")
    capture.record("prompt_embeds", seen["prompt_embeds"], "embedding")
    if seen.get("negative_prompt_embeds") is not None:
        capture.record("negative_prompt_embeds", seen["negative_prompt_embeds"], "embedding")
    capture.record("timesteps", pipe.scheduler.timesteps, "schedule")
    capture.record("sigmas", pipe.scheduler.sigmas, "schedule")
    capture.record("initial_latents", seen["initial_latents"], "latent")
    if "image_latents" in seen:
        capture.record("image_latents", seen["image_latents"], "latent")
    for i, t, latents, info, timestep, branches, noise in steps:
        meta = {"timestep": float(t), **info}
        if timestep is not None:
            capture.record(step_checkpoint(i, what="timestep_input"), timestep, "timestep", step=i, meta=meta)
        for what, tensor in branches.items():
            capture.record(step_checkpoint(i, what=what), tensor, "noise", step=i, meta=meta)
        capture.record(step_checkpoint(i, what="noise_guided"), noise, "noise", step=i, meta=meta)
        capture.record(step_checkpoint(i), latents, "latent", step=i, meta=meta)
    capture.record("final_latents", steps[-1][2], "latent")
    capture.record("decoder_input", seen["decoder_input"], "latent")
    capture.record("decoder_output", seen["decoder_output"], "decoded")
    capture.record("frames", frames, "frames")
    return capture, frames
