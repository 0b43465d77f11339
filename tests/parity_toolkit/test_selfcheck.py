"""The parity self-check on CPU (issue 16, item 7): a small subset of the fault library per family.

Both sides are real runs: the official pipeline and the native one, the native side with one
planted fault. The ground truth (which checkpoint a fault changes first) comes from the native
side alone, faulty vs clean, bitwise; parity's verdict must then fail there. The full library
and the fast/fp32 rates are in benchmarks/results/selfcheck_*.json (`workbench selfcheck`).
"""

from __future__ import annotations

import pytest

from workbench import registry
from workbench.parity.selfcheck import run_selfcheck

# One weight, one config and one code fault per family (the ones the tiny-ci request exercises).
SUBSET = {
    "wan_t2v": ("weight:transformer:0.001", "config:vae:latents_std", "code:cfg_scale_minus_one"),
    "wan22_t2v": ("weight:transformer_2:0.001", "config:scheduler", "code:cfg_branches_swapped"),
    "wan_i2v": ("weight:image_encoder:0.01", "config:vae:latents_std", "code:decode_without_denormalisation"),
    "stable_audio": ("weight:projection_model:0.01", "config:scheduler", "code:negative_prompt_ignored"),
    "ltx2": ("weight:vocoder:0.01", "config:scheduler", "code:audio_cfg_uses_video_scale"),
    "hunyuan_video": ("weight:text_encoder_2:0.01", "config:scheduler", "code:cfg_scale_minus_one"),
}


def test_every_family_has_a_subset():
    assert set(SUBSET) == set(registry.FAMILIES)


@pytest.mark.parametrize("family", sorted(SUBSET))
def test_exact_mode_detects_and_localises_the_subset(family):
    result = run_selfcheck(family, mode="exact", only=SUBSET[family])
    assert result["clean"]["passed"] and result["clean"]["repeatable"], result["clean"]
    rows = result["faults"]
    assert len(rows) == len(SUBSET[family]), [r["id"] for r in rows]
    for row in rows:
        assert row["error"] is None and row["exercised"], row
        assert row["detected"] and row["localised"], row
        if row["category"] == "weight":
            assert row["gate_refuses"] is True  # the sha-bound gate would have stopped it first
            assert row["detected_numerically"]


def test_fast_mode_is_calibrated_and_catches_gross_faults():
    result = run_selfcheck("wan_t2v", mode="fast", only=("code:cfg_branches_swapped", "code:negative_prompt_ignored",
                                                         "config:vae"))
    assert result["tolerance"] == "fast (calibrated)"
    assert result["clean"]["passed"] and result["clean"]["worst_ratio_to_bound"] < 1.0
    assert all(r["detected"] and r["localised"] for r in result["faults"]), result["faults"]


def test_fp32_mode_catches_a_weight_fault_under_bf16_resolution():
    """1e-3 of a weight's RMS: invisible in bf16, caught (and placed) by fp32 parity's floor."""
    result = run_selfcheck("wan_t2v", mode="fp32", only=("weight:transformer:0.001", "code:denoiser_norm_eps"))
    assert result["tolerance"] == "fp32 (calibrated)" and result["clean"]["passed"]
    for row in result["faults"]:
        assert row["exercised"] and row["detected_numerically"] and row["localised"], row


def test_bad_input_is_one_line_and_exit_2(capsys):
    from workbench.cli import main

    assert main(["selfcheck", "no_such_family"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown family 'no_such_family'" in err[0]


def test_set_passes_the_request_through(monkeypatch):
    """`--set KEY=VALUE` reaches run_selfcheck as its request (how the full-size GPU run used 3 steps)."""
    import workbench.parity.selfcheck as selfcheck
    from workbench.cli import main
    from workbench.errors import ParameterError

    seen = {}

    def record(family, **kwargs):
        seen.update(kwargs, family=family)
        raise ParameterError("recorded")

    monkeypatch.setattr(selfcheck, "run_selfcheck", record)
    assert main(["selfcheck", "wan_t2v", "--set", "num_inference_steps=2", "--only", "code:cfg"]) == 2
    assert seen["family"] == "wan_t2v" and seen["request"] == {"num_inference_steps": 2}
    assert seen["only"] == ("code:cfg",)
    assert main(["selfcheck", "wan_t2v", "--set", "no_such_field=1"]) == 2
