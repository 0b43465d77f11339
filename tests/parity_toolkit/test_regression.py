"""Regression against committed goldens: cross-host tolerant, still sharp.

Parity (native vs official, one process) stays exact; regression (a run on this host vs
goldens blessed on any x86-64 host) uses the measured cross-host tolerance. These tests hold
that tolerance to its two promises: a planted 1e-4 relative change fails and is named, and
the goldens pass under every CPU vector path this host has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from workbench import registry
from workbench.io import DirectorySwap
from workbench.parity import golden as golden_module
from workbench.parity.capture import KINDS, CaptureSet
from workbench.parity.compare import compare_captures
from workbench.parity.golden import load_golden, regress
from workbench.parity.numeric_env import CAPABILITIES, PINS, describe, mismatch, supported_capabilities
from workbench.parity.runner import run_native
from workbench.parity.tolerances import REGRESSION_BY_KIND, tolerances_for

REPO = Path(__file__).resolve().parents[2]
SPREAD = REPO / "benchmarks" / "results" / "numeric_spread.json"
GOLDENS = [(name, preset) for name in sorted(registry.FAMILIES) for preset in registry.get_family(name).golden_presets]


def planted(capture: CaptureSet, name: str, relative: float) -> CaptureSet:
    out = CaptureSet()
    for c in capture:
        tensor = c.tensor * (1 + relative) if c.name == name else c.tensor
        out.record(c.name, tensor, c.kind, c.step, c.meta)
    return out


@pytest.mark.parametrize("family,preset", GOLDENS)
def test_a_planted_1e4_relative_change_in_any_golden_tensor_fails_naming_it(family, preset):
    golden, _ = load_golden(family, preset)
    assert compare_captures(golden, golden, mode="regression").passed
    for checkpoint in golden:
        if not checkpoint.tensor.is_floating_point() or not checkpoint.tensor.abs().max() > 0:
            continue
        verdict = compare_captures(golden, planted(golden, checkpoint.name, 1e-4), mode="regression")
        assert verdict.first_divergence is not None, checkpoint.name
        assert verdict.first_divergence.name == checkpoint.name
        assert "max_rel_diff" in verdict.first_divergence.reason


def test_a_planted_1e4_relative_weight_change_fails_the_regression(wan_copy):
    path = wan_copy / "converted" / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    state["proj_out.weight"] = state["proj_out.weight"] * (1 + 1e-4)
    save_file(state, str(path))
    native, _ = run_native(wan_copy / "converted", registry.get_family("wan_t2v").sampling_params("tiny-ci"))
    verdict = regress("wan_t2v", "tiny-ci", native)
    # The transformer's output moves by ~1e-4 relative: the first checkpoint out of the regression
    # bound is its first prediction (latents_step_000 moves by dt x that, under the bound).
    assert not verdict.passed and verdict.first_divergence.name == "noise_cond_step_000", verdict.summary_table()
    assert verdict.result("latents_step_000").passed
    assert all(verdict.result(n).passed for n in ("prompt_embeds", "timesteps", "initial_latents"))


def test_every_kind_has_a_measured_regression_bound_below_the_planted_change():
    """Each bound sits above the spread measured across numeric environments (the committed
    benchmarks/results/numeric_spread.json) and far enough below 1e-4 to catch the plant."""
    measured = json.loads(SPREAD.read_text())["by_kind"]
    assert set(REGRESSION_BY_KIND) == set(KINDS)
    for kind, tolerance in REGRESSION_BY_KIND.items():
        assert tolerance.max_rel <= 2.5e-5, kind
        assert tolerance.max_rel >= 2 * measured.get(kind, {}).get("max_rel", 0.0), kind
    assert tolerances_for("regression").mode == "regression"


def test_regression_refuses_goldens_from_another_builder(monkeypatch):
    native, _ = load_golden("wan_t2v", "tiny-ci")
    monkeypatch.setattr("workbench.references.builder_fingerprint", lambda family: "0123456789ab")
    with pytest.raises(Exception, match=r"blessed from builder \w+, this checkout builds 0123456789ab: re-bless"):
        regress("wan_t2v", "tiny-ci", native)


def test_an_edited_builder_that_builds_the_same_files_needs_no_rebless(monkeypatch, wan_dir, wan_copy):
    """The build's files decide: the blessed bytes pass under any builder source; other bytes
    from another builder are refused naming the re-bless."""
    native, _ = load_golden("wan_t2v", "tiny-ci")
    monkeypatch.setattr("workbench.references.builder_fingerprint", lambda family: "0123456789ab")
    assert regress("wan_t2v", "tiny-ci", native, model_dir=wan_dir).passed
    path = wan_copy / "converted" / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    state["proj_out.weight"] = state["proj_out.weight"] * (1 + 1e-4)
    save_file(state, str(path))
    with pytest.raises(Exception, match=r"this checkout builds 0123456789ab: re-bless .* differs from the blessed one"):
        regress("wan_t2v", "tiny-ci", native, model_dir=wan_copy)


def test_regression_names_a_different_numeric_environment_plainly():
    here = describe()
    intel = dict(here, cpu_capability="AVX2", cpu_vendor="GenuineIntel", cpu_model="Intel Xeon",
                 variables={"MKL_CBWR": "COMPATIBLE"})
    text = mismatch(intel, dict(here, cpu_capability="AVX512", cpu_vendor="AuthenticAMD", cpu_model="AMD EPYC"))
    assert text.startswith("blessed on AVX2/Intel (Intel Xeon; MKL_CBWR=COMPATIBLE), running on AVX512/AMD (AMD EPYC")
    assert text.endswith("cross-host tolerance applies")
    assert mismatch(here, here) is None
    assert "without a recorded numeric environment" in mismatch(None, here)
    verdict = regress("wan_t2v", "tiny-ci", load_golden("wan_t2v", "tiny-ci")[0])
    assert verdict.passed and verdict.mode == "regression" and "numeric_environment" in verdict.gates


def test_bless_swap_finishes_after_a_kill_and_drops_stale_staging(tmp_path):
    root = tmp_path / "ref"
    (root / "goldens").mkdir(parents=True)
    (root / "goldens" / "old.txt").write_text("old")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "old.ipynb").write_text("old")
    swap = DirectorySwap(root, "bless-x")
    swap.stage(root / "goldens").joinpath("new.txt").write_text("new")
    swap.stage(root / "notebooks").joinpath("new.ipynb").write_text("new")
    # A kill right after the first rename: the journal is written, one target swapped.
    original = swap._apply
    swap._apply = lambda: None
    swap.commit()
    staged, target = swap.pairs[0]
    os.replace(target, staged.with_name(staged.name + ".old"))
    os.replace(staged, target)
    swap._lock.close()
    swap._apply = original
    assert (root / DirectorySwap.JOURNAL).is_file() and (root / "notebooks" / "old.ipynb").exists()
    stale = Path(root / ".staging-bless-y-abc")
    stale.mkdir()  # a run killed before its commit

    DirectorySwap(root, "bless-x").close()  # the next bless recovers first

    assert sorted(p.name for p in (root / "goldens").iterdir()) == ["new.txt"]
    assert sorted(p.name for p in (root / "notebooks").iterdir()) == ["new.ipynb"]
    assert sorted(p.name for p in root.iterdir()) == [".swap.lock", "goldens", "notebooks"]


def test_blessing_stages_everything_and_swaps_in_goldens_with_the_manifest_environment(tmp_path, monkeypatch):
    from workbench.commands.bless import bless_family

    monkeypatch.setenv("WORKBENCH_REFERENCE_OUTPUTS", str(tmp_path))
    (target,) = bless_family("wan_t2v", only="goldens", progress=False)
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["numeric_environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert manifest["numeric_environment"]["variables"]["MKL_CBWR"] == "COMPATIBLE"  # the pins of tests/conftest.py
    blessed, _ = golden_module.load_golden("wan_t2v", "tiny-ci")
    monkeypatch.delenv("WORKBENCH_REFERENCE_OUTPUTS")
    committed, _ = load_golden("wan_t2v", "tiny-ci")
    assert compare_captures(committed, blessed, mode="regression").passed
    assert sorted(p.name for p in tmp_path.iterdir()) == [".swap.lock", "wan_t2v"]


@pytest.mark.slow
@pytest.mark.parametrize("capability", [c for c in CAPABILITIES
                                        if c in supported_capabilities() and c != PINS["ATEN_CPU_CAPABILITY"]])
def test_goldens_and_notebook_numbers_pass_under_every_cpu_capability(capability, tmp_path):
    """A fresh build and run under each other vector path this CPU has, as on another host
    (the pinned one is the rest of this suite): every golden test, and nbval over the
    notebooks whose numbers flipped across hosts.

    The model files are the pinned build (made here, in this process): a host that blesses or
    tests builds under the pins, and the component gate is bound to those files' sha256; what
    moves with the vector path is every run on them."""
    from workbench.references import ensure_reference

    for family in registry.FAMILIES.values():
        ensure_reference(family)
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability,
               HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--rootdir", str(REPO),
           "-k", "golden or (nbval_reexecutes and (stable_audio or wan_i2v))", "--basetemp", str(tmp_path / "t"),
           str(REPO / "tests" / "families"), str(REPO / "tests" / "notebooks" / "test_nbval_regression.py")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert f"{len(registry.FAMILIES) + 2} passed" in proc.stdout, proc.stdout[-2000:]
