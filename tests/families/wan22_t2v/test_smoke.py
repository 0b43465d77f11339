"""Wan 2.2 smoke tests: family selection, loading, validation and `workbench generate`."""

from __future__ import annotations

import json

import pytest

from workbench import registry
from workbench.runtime.manifest import read_manifest

pytestmark = pytest.mark.usefixtures("single_torch_thread")

FAMILY = "wan22_t2v"


@pytest.mark.parametrize("family, expected", [("wan22_t2v", "wan22_t2v"), ("wan_t2v", "wan_t2v"),
                                              ("wan_i2v", "wan_i2v")])
def test_detectors_choose_the_family_config_from_the_manifest(reference_dir, family, expected):
    for side in ("official", "converted"):
        model_dir = reference_dir(family) / side
        assert registry.family_for_manifest(read_manifest(model_dir), model_dir).name == expected


def test_one_pipeline_class_for_one_and_two_experts(reference_dir):
    from workbench.api.generate import load_pipeline
    from workbench.families.wan.pipeline import NativeWanPipeline

    two = load_pipeline(reference_dir(FAMILY) / "converted", device="cpu", progress=False)
    one = load_pipeline(reference_dir("wan_t2v") / "converted", device="cpu", progress=False)
    assert type(two) is type(one) is NativeWanPipeline
    assert [e.name for e in two.experts()] == ["transformer", "transformer_2"]
    assert "transformer_2" in two.required_modules and "transformer_2" not in one.required_modules
    assert [e.name for e in one.experts()] == ["transformer"]
    # the class constant is never extended in place
    assert "transformer_2" not in NativeWanPipeline._required_config_modules


def test_generate_writes_video_and_records_both_guidance_scales(cli, tmp_path):
    out = tmp_path / "wan22.mp4"
    code, stdout, _ = cli("generate", FAMILY, "--out", out, "--set", "guidance_scale_2=2.5")
    assert code == 0 and out.stat().st_size > 0
    sidecar = json.loads(out.with_name("wan22.mp4.json").read_text())
    assert sidecar["media"] == {"height": 32, "width": 32, "num_frames": 9, "fps": 8}
    assert sidecar["parameters"]["guidance_scale"] == 4.0 and sidecar["parameters"]["guidance_scale_2"] == 2.5


@pytest.mark.parametrize("family, assignment, field", [
    ("wan_t2v", "boundary_ratio=0.5", "boundary_ratio"),      # one expert: nothing to switch to
    ("wan_t2v", "guidance_scale_2=3.0", "guidance_scale_2"),  # official: only with a boundary_ratio
    (FAMILY, "boundary_ratio=1.5", "boundary_ratio"),
])
def test_invalid_two_expert_requests_are_clear_errors(cli, tmp_path, family, assignment, field):
    code, _, err = cli("generate", family, "--out", tmp_path / "x.mp4", "--set", assignment)
    assert code == 2
    assert f"field '{field}'" in err and "Traceback" not in err


def test_expand_timesteps_manifest_is_refused_before_loading(broken_copy, edit_json):
    from workbench.api.generate import load_pipeline
    from workbench.errors import ManifestError

    model_dir = broken_copy(FAMILY)
    edit_json(model_dir / "converted" / "model_index.json", expand_timesteps=True)
    with pytest.raises(ManifestError, match="expand_timesteps"):
        load_pipeline(model_dir / "converted", device="cpu")
