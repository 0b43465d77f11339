"""HunyuanVideo regression: the native run against the committed goldens (cross-host tolerance)."""

from __future__ import annotations

from workbench import registry
from workbench.parity.golden import load_golden, regress
from workbench.parity.runner import run_native
from workbench.references import ensure_reference

FAMILY = registry.get_family("hunyuan_video")


def test_native_matches_the_golden_artifacts():
    model_dir = ensure_reference(FAMILY)
    golden, manifest = load_golden("hunyuan_video", "tiny-ci")
    params = FAMILY.sampling_params("tiny-ci")
    assert manifest["parameters"] == params.to_json_dict()
    native, _ = run_native(model_dir / "converted", params)
    verdict = regress("hunyuan_video", "tiny-ci", native, model_dir=model_dir)
    assert golden.names() == native.names() and verdict.passed, verdict.summary_table()
