"""`--mode fp32` (issue 16, item 2): both sides every module in fp32, TF32 off, one SDPA backend,
deterministic algorithms, tolerances from the measured fp32 floor. Runs on CPU here; the same
mode runs at full size on CUDA (`workbench parity wan_t2v --mode fp32 --device cuda`)."""

from __future__ import annotations

import torch

from workbench.parity.calibration import strict_numerics
from workbench.parity.runner import run_parity


def test_fp32_parity_passes_calibrated_with_fp32_on_both_sides():
    verdict = run_parity("wan_t2v", mode="fp32").verdict
    assert verdict.passed, verdict.summary_table()
    assert verdict.mode == "fp32"
    assert {c.tolerance_source for c in verdict.checkpoints} == {"calibrated"}
    assert verdict.calibration["dtype"].startswith("float32") and "attention math" in verdict.calibration["dtype"]
    assert list(verdict.calibration["variants"]) == ["attention"]
    for c in verdict.checkpoints:
        if c.kind in ("embedding", "latent", "frames"):
            assert c.metrics.reference_dtype == c.metrics.native_dtype == "float32", c.name
        # the fp32 floor is op-order noise: every bound is under 1e-4 of the tensor's scale (a bf16
        # ulp is 4e-3 of it), which is what lets fp32 parity see faults fast mode cannot
        scale = verdict.calibration["floors"][c.name]["scale"]
        assert c.tolerance.max_abs <= 1e-4 * scale, c.name


def test_strict_numerics_is_restored():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.are_deterministic_algorithms_enabled())
    with strict_numerics():
        assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
        assert torch.are_deterministic_algorithms_enabled()
    assert (torch.backends.cuda.matmul.allow_tf32, torch.are_deterministic_algorithms_enabled()) == before
