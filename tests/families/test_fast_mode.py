"""Fast mode (reduced precision, batched guidance) stays within DESIGN's tolerances for every
family, against the official pipeline loaded the official reduced-precision way. Runs on CPU
for CI; the same check runs on CUDA with `workbench parity FAMILY --mode fast --device cuda`."""

import pytest

from workbench import registry
from workbench.parity.runner import run_parity


@pytest.mark.parametrize("family", sorted(registry.FAMILIES))
def test_fast_mode_parity(family):
    fam = registry.get_family(family)
    assert fam.fast.module_dtypes, f"{family} declares no reduced-precision modules for fast mode"
    verdict = run_parity(family, mode="fast").verdict
    assert verdict.passed, verdict.summary_table()
    final = [c for c in verdict.checkpoints if c.name.endswith("final_latents")]
    assert final and all(c.metrics.cosine >= 0.999 for c in final)
