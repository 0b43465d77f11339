"""Calibrated tolerances (issue 16): floors measured from the reference against itself, k x floor
bounds, the capped PSNR rescue, the fixed fallback that says so, config diff and the sha-bound gate."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from workbench.parity.calibration import CalibratedTolerances, Floors, calibrated_tolerance, measure_floors
from workbench.parity.metrics import compare_tensors
from workbench.parity.tolerances import CALIBRATION, Tolerance, tolerances_for
from workbench.parity.verdict import Verdict

from .conftest import copy_capture, make_video_capture


def test_floor_is_the_worst_variant_per_checkpoint():
    base = make_video_capture()
    small = copy_capture(base, lambda n, t: t + 1e-3)
    large = copy_capture(base, lambda n, t: t - 4e-3 if n == "frames" else t)
    floors = measure_floors(base, {"small": small, "large": large})
    frames = floors["frames"]
    # independent of the code under test: the shifts planted above
    assert frames["max_abs"] == pytest.approx(4e-3, rel=1e-4)
    assert frames["by_variant"]["small"]["max_abs"] == pytest.approx(1e-3, rel=1e-3)
    assert floors["prompt_embeds"]["max_abs"] == pytest.approx(1e-3, rel=1e-3)
    assert frames["scale"] == float(base["frames"].tensor.abs().max())


def test_bound_is_k_times_floor_plus_scaled_epsilon():
    spec = CALIBRATION["fast"]
    row = {"kind": "latent", "dtype": "bfloat16", "max_abs": 0.01, "mean_abs": 0.002, "scale": 4.0, "psnr": None}
    tol = calibrated_tolerance(row, spec)
    assert tol.max_abs == pytest.approx(spec.k * 0.01 + 2.0**-7 * 4.0)  # one bf16 ulp at the scale
    assert tol.max_mean_abs == pytest.approx(spec.k * 0.002 + 2.0**-7 * 4.0)
    zero = calibrated_tolerance({**row, "dtype": "float32", "max_abs": 0.0, "mean_abs": 0.0}, spec)
    assert 0 < zero.max_abs < 1e-5  # a zero fp32 floor (a schedule) leaves fp32 rounding room only
    integer = calibrated_tolerance({**row, "dtype": "int64", "max_abs": 0.0, "mean_abs": 0.0}, spec)
    assert integer.max_abs == 0.0


def test_psnr_never_rescues_a_diff_beyond_its_multiple_of_the_floor():
    spec = CALIBRATION["fast"]
    row = {"kind": "frames", "max_abs": 0.01, "mean_abs": 0.001, "scale": 1.0, "psnr": 50.0}
    tol = calibrated_tolerance(row, spec)
    frames = torch.full((1, 2, 16, 16, 3), 0.5)
    one_pixel = frames.clone()
    one_pixel[0, 0, 0, 0, 0] += 1.5 * tol.max_abs  # over the bound, high PSNR, under the rescue cap
    assert tol.check(compare_tensors(frames, one_pixel, "frames"))[0]
    clamp_like = frames.clone()
    clamp_like[0, 0, 0, 0, 0] += 0.27  # the dropped clamp: 40 dB PSNR would pass a PSNR-only bar
    passed, reason = tol.check(compare_tensors(frames, clamp_like, "frames"))
    assert not passed and "alternative not applicable" in reason


def test_fixed_fallback_frames_rescue_is_capped_too():
    tol = tolerances_for("fast").for_checkpoint("frames", "frames")
    frames = torch.full((1, 9, 32, 32, 3), 0.5)
    clamp_like = frames.clone()
    clamp_like[0, 0, :2, :2, :] += 0.27
    metrics = compare_tensors(frames, clamp_like, "frames")
    assert metrics.psnr > 30.0  # the PSNR-only alternative alone would have passed it
    assert not tol.check(metrics)[0]


def test_checkpoints_without_a_floor_fall_back_and_say_so():
    base = make_video_capture()
    floors = Floors("fast", "k", measure_floors(base, {"v": copy_capture(base, lambda n, t: t + 1e-3)}), {"v": ""}, "")
    table = CalibratedTolerances(floors)
    assert table.source("frames", "frames") == "calibrated"
    assert table.for_checkpoint("frames", "frames").max_mean_abs is not None
    assert table.source("new_kind_checkpoint", "latent").startswith("fixed fallback: no floor measured")
    assert table.for_checkpoint("new_kind_checkpoint", "latent") == tolerances_for("fast").by_kind["latent"]
    assert table.source("frames", "latent").startswith("fixed fallback: the floor was measured for kind")


def test_verdict_json_carries_floor_k_source_calibration_and_config_differences(tmp_path):
    from workbench.parity.calibration import annotate
    from workbench.parity.compare import compare_captures

    base = make_video_capture()
    floors = Floors("fast", "key1", measure_floors(base, {"v": copy_capture(base, lambda n, t: t + 1e-3)}),
                    {"v": "shift"}, "base")
    table = CalibratedTolerances(floors)
    verdict = compare_captures(base, copy_capture(base, lambda n, t: t + 2e-3), tolerances=table)
    annotate(verdict, table)
    assert verdict.passed  # 2e-3 <= 4 x 1e-3
    verdict.config_differences = [{"file": "vae/config.json", "field": "latents_std[0]", "official": 0.77,
                                   "native": 0.78}]
    assert not verdict.passed
    assert verdict.first_finding == "vae/config.json: latents_std[0] 0.77 (official) vs 0.78 (native)"
    loaded = Verdict.from_json(verdict.to_json(tmp_path / "v.json"))
    frames = loaded.result("frames")
    assert (frames.floor, frames.k, frames.tolerance_source) == (pytest.approx(1e-3, rel=1e-3), 4.0, "calibrated")
    assert loaded.calibration["key"] == "key1" and loaded.calibration["k"] == 4.0
    assert loaded.config_differences[0]["field"] == "latents_std[0]"
    assert json.loads((tmp_path / "v.json").read_text())["first_finding"].startswith("vae/config.json")
    assert "first finding: config differs: vae/config.json" in loaded.summary_table()


def test_config_diff_names_file_and_field(wan_copy):
    from workbench.parity.runner import diff_configs

    assert diff_configs(wan_copy) == []
    path = wan_copy / "converted" / "vae" / "config.json"
    cfg = json.loads(path.read_text())
    official = cfg["latents_std"][0]
    cfg["latents_std"][0] = official * 1.01
    path.write_text(json.dumps(cfg))
    assert diff_configs(wan_copy) == [{"file": "vae/config.json", "field": "latents_std[0]", "official": official,
                                       "native": official * 1.01}]


def test_gate_refuses_files_that_differ_from_the_record(wan_copy, wan_dir):
    from workbench.errors import GateError
    from workbench.parity.runner import run_parity
    from workbench.references import tree_sha256

    recorded = tree_sha256(wan_dir / "converted" / "transformer")
    weights = wan_copy / "converted" / "transformer" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    found = tree_sha256(wan_copy / "converted" / "transformer")
    with pytest.raises(GateError) as err:
        run_parity("wan_t2v", model_dir=wan_copy)
    message = str(err.value)
    assert f"transformer (recorded {recorded}, found {found})" in message


def test_cached_tree_sha_matches_the_plain_one(wan_copy):
    from workbench.portstate.components import cached_tree_sha256
    from workbench.references import tree_sha256

    folder = wan_copy / "converted" / "vae"
    assert cached_tree_sha256(folder) == tree_sha256(folder) == cached_tree_sha256(folder)
    shutil.copy(folder / "config.json", folder / "extra.json")
    assert cached_tree_sha256(folder) == tree_sha256(folder)
