"""The official reference for Wan 2.2: diffusers' `WanPipeline` with `transformer_2` and a
`boundary_ratio` in its config, built offline from the Wan 2.1 component builders.

Running it is Wan 2.1's `run_reference`: the same official class, which records which
expert ran at each step and applies a requested `boundary_ratio` to the pipeline config.
"""

from __future__ import annotations

from pathlib import Path

from workbench.families.wan import reference as wan_reference
from workbench.families.wan.reference import load_official, run_reference  # noqa: F401  (the family's runner)

BUILT_ON = (wan_reference,)
NATIVE_CLASS = wan_reference.NATIVE_CLASS

# Wan2.2-T2V-A14B: boundary 0.875 (Wan-Video/Wan2.2 wan/configs/wan_t2v_A14B.py `boundary`;
# diffusers scripts/convert_wan_to_diffusers.py writes WanPipeline(boundary_ratio=0.875)).
BOUNDARY_RATIO = 0.875

# `tiny` = the Wan 2.1 tiny transformer (twice, seeds 1 and 2); `full` = one A14B expert
# (Wan2.2-T2V-A14B-Diffusers transformer/config.json, same for transformer_2).
TRANSFORMER_SIZES = {
    "tiny": wan_reference.TRANSFORMER_SIZES["tiny"],
    "full": dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16,
                 out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
                 qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
}


def build_official(scale: str = "tiny"):
    return wan_reference.build_official(scale, transformer_2=True, boundary_ratio=BOUNDARY_RATIO,
                                        transformer_sizes=TRANSFORMER_SIZES)


def build_reference(out: Path, scale: str = "tiny") -> Path:
    """Write `out/official` and `out/converted` (byte-identical across processes)."""
    return wan_reference.save_reference(build_official(scale), out, NATIVE_CLASS)
