"""The official reference: diffusers' `WanImageToVideoPipeline`, built offline and run with stage capture.

The tokenizer, UMT5 encoder, VAE and scheduler are Wan 2.1's (`families/wan/reference.py`);
the transformer takes 36 input channels (16 noise + 4 mask + 16 image latent) and CLIP
image embeddings through its own image cross-attention (`added_kv_proj_dim`), and a
`CLIPVisionModel` + `CLIPImageProcessorPil` encode the image: the PIL variant is named
explicitly because `CLIPImageProcessor` resolves to a torchvision-backed class where
torchvision is installed (the GPU image) and to the PIL one where it is not (CI), which
made the two builds' manifests, and so their component records, differ.

Checkpoints beyond Wan 2.1's: `image_embeds` (what the transformer receives as
`encoder_hidden_states_image`, read with a forward pre-hook) and `image_latents` (the
mask + normalized latent condition returned by `prepare_latents`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from workbench.api.params import SamplingParam
from workbench.families.offline import seeded
from workbench.families.wan import reference as wan_reference
from workbench.parity.capture import CaptureSet

BUILT_ON = (wan_reference,)
OFFICIAL_CLASS = "WanImageToVideoPipeline"
NATIVE_CLASS = "NativeWanI2VPipeline"

# `tiny`: Wan 2.1's tiny transformer with the I2V inputs (image_dim = CLIP hidden_size,
# added_kv_proj_dim = inner dim 2 x 12). `full`: Wan2.1-I2V-14B-480P (diffusers
# scripts/convert_wan_to_diffusers.py, model_type "Wan-I2V-14B-480p").
TRANSFORMER_SIZES = {
    "tiny": {**wan_reference.TRANSFORMER_SIZES["tiny"], "in_channels": 36, "image_dim": 16, "added_kv_proj_dim": 24},
    "full": dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36,
                 out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280, added_kv_proj_dim=5120,
                 rope_max_seq_len=1024),
}
# `full`: the ViT-H/14 vision tower of laion/CLIP-ViT-H-14-laion2B-s32B-b79K, which the diffusers
# converter loads as the image encoder (the sizes of that published architecture; not read offline).
IMAGE_ENCODER_SIZES = {
    "tiny": dict(hidden_size=16, projection_dim=16, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                 intermediate_size=32, patch_size=4),
    "full": dict(hidden_size=1280, projection_dim=1024, num_hidden_layers=32, num_attention_heads=16,
                 image_size=224, intermediate_size=5120, patch_size=14, hidden_act="gelu"),
}
IMAGE_PROCESSOR_SIZES = {"tiny": dict(crop_size=32, size=32), "full": dict(crop_size=224, size=224)}


def build_official(scale: str = "tiny"):
    """The official pipeline from seeded random-init components (image encoder seed 4)."""
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel

    components = wan_reference.build_components(scale)
    transformer = wan_reference.build_transformer(TRANSFORMER_SIZES[scale], seed=1, scale=scale)
    with torch.device(wan_reference.init_device(scale)):
        seeded(4)
        image_encoder = CLIPVisionModel(CLIPVisionConfig(**IMAGE_ENCODER_SIZES[scale])).eval()
    return WanImageToVideoPipeline(**components, transformer=transformer, image_encoder=image_encoder,
                                   image_processor=CLIPImageProcessorPil(**IMAGE_PROCESSOR_SIZES[scale]))


def build_reference(out: Path, scale: str = "tiny") -> Path:
    """Write `out/official` and `out/converted` (byte-identical across processes)."""
    return wan_reference.save_reference(build_official(scale), out, NATIVE_CLASS)


def load_official(official_dir: Path, device: torch.device, dtype: torch.dtype | None = None,
                  fp32_modules: tuple[str, ...] = ()):
    return wan_reference.load_official(official_dir, device, dtype, fp32_modules, pipeline_class=OFFICIAL_CLASS)


def run_reference(official_dir: Path, params: SamplingParam, device: torch.device = torch.device("cpu"),
                  pipe=None) -> tuple[CaptureSet, torch.Tensor]:
    """Run the official pipeline with `params` (image read by diffusers' `load_image`)."""
    from diffusers.utils import load_image

    pipe = pipe or load_official(official_dir, device)
    image = params.image if not isinstance(params.image, Path) else str(params.image)
    seen: dict = {}

    def record_image_embeds(module, args, kwargs):
        seen.setdefault("image_embeds", kwargs["encoder_hidden_states_image"])

    handle = pipe.transformer.register_forward_pre_hook(record_image_embeds, with_kwargs=True)
    try:
        return wan_reference.run_official(pipe, params, seen, image=load_image(image))
    finally:
        handle.remove()
