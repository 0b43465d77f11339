"""Issue 16 item 5: `workbench parity F` without --set runs the family's probe set, and the
probes catch the bugs they exist for with no user input (planted on the native side only)."""

from __future__ import annotations

import json

import pytest

from workbench import registry
from workbench.parity.runner import parity_probes, run_probes


def test_every_family_declares_a_probe_set():
    for name in ("wan_t2v", "wan22_t2v", "wan_i2v", "stable_audio", "ltx2"):
        probes = parity_probes(registry.get_family(name))
        assert len(probes) >= 2 and len({p.name for p in probes}) == len(probes), name
        family = registry.get_family(name)
        for probe in probes:  # every probe is a valid request over the default preset
            family.sampling_params(None, probe.request)


def test_cli_without_set_runs_the_probe_set_as_rows(cli, tmp_path):
    code, out, _ = cli("parity", "wan_t2v", "--json", tmp_path / "v.json")
    assert code == 0, out
    rows = json.loads((tmp_path / "v.json").read_text())["probes"]
    assert [(r["name"], r["passed"]) for r in rows] == [("prompt_cleaning", True), ("non_square", True),
                                                        ("no_guidance", True)]
    assert rows[1]["request"] == {"height": 32, "width": 48, "num_inference_steps": 2}
    assert "probe            result  first divergence" in out and "non_square       pass" in out


@pytest.mark.parametrize("family", ["stable_audio", "ltx2"])  # the Wan families' CLI tests run theirs
def test_the_probe_set_passes_on_the_clean_build(family):
    rows = run_probes(family)
    assert rows and all(r["passed"] for r in rows), rows


def test_skipped_prompt_cleaning_is_caught_by_the_probe(monkeypatch):
    import workbench.families.wan.pipeline as wan_pipeline

    monkeypatch.setattr(wan_pipeline, "prompt_clean", lambda text: text)
    (row,) = run_probes("wan_t2v", names=["prompt_cleaning"])
    assert not row["passed"] and row["first_divergence"] == "prompt_embeds"


def test_a_strict_expert_switch_is_caught_by_the_boundary_probe(monkeypatch):
    """`t > boundary` instead of `t >= boundary`: only a timestep exactly on the boundary shows it."""
    from workbench.runtime.stages import DenoisingStage

    def strict(self, t, batch, num_train_timesteps):
        experts = self.experts()
        if len(experts) < 2 or batch.boundary_ratio is None:
            return experts[0]
        return experts[0] if t > batch.boundary_ratio * num_train_timesteps else experts[1]

    monkeypatch.setattr(DenoisingStage, "expert_for", strict)
    (row,) = run_probes("wan22_t2v", names=["boundary_on_a_timestep"])
    assert not row["passed"] and row["first_divergence"] == "timestep_input_step_001"
    assert "expert differs: reference 'transformer', native 'transformer_2'" in row["reason"]


def test_an_ignored_audio_window_start_is_caught_by_the_window_probe(monkeypatch):
    from workbench.api.generate import load_pipeline
    from workbench.references import ensure_reference

    root = ensure_reference(registry.get_family("stable_audio"))
    stage = load_pipeline(root / "converted", device="cpu", progress=False).stage("DecodingStage")
    original = stage.decode

    def from_zero(latents, batch):
        start, batch.audio_start_in_s = batch.audio_start_in_s, 0.0
        try:
            return original(latents, batch)
        finally:
            batch.audio_start_in_s = start

    monkeypatch.setattr(stage, "decode", from_zero)
    (row,) = run_probes("stable_audio", names=["partial_window"])
    assert not row["passed"] and row["first_divergence"] == "waveform"
    assert "shape mismatch" in row["reason"]


def test_ltx2_tiny_build_has_latent_statistics_that_expose_a_missing_denormalisation(monkeypatch):
    """Identity statistics (mean 0, std 1, scaling 1) made decoding without denormalisation invisible."""
    from workbench.api.generate import load_pipeline
    from workbench.parity.compare import compare_captures
    from workbench.parity.runner import run_native, run_reference
    from workbench.references import ensure_reference

    family = registry.get_family("ltx2")
    root = ensure_reference(family)
    pipe = load_pipeline(root / "converted", device="cpu", progress=False)
    vae = pipe.vae
    assert vae.config.scaling_factor != 1.0
    assert vae.latents_mean.abs().min() > 0 and (vae.latents_std - 1).abs().min() > 0
    assert (pipe.audio_vae.latents_std - 1).abs().min() > 0

    stage = pipe.stage("DecodingStage")

    def without_denormalisation(latents, batch):
        video = vae.decode(latents.to(vae.dtype), None, return_dict=False)[0]
        return (video * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1).float()

    monkeypatch.setattr(stage, "decode", without_denormalisation)
    params = family.sampling_params(None, {"num_inference_steps": 2})
    reference = run_reference(family, root / "official", params, "cpu")
    native, _ = run_native(root / "converted", params)
    verdict = compare_captures(reference, native, mode="exact")
    assert verdict.result("final_latents").passed
    assert verdict.first_divergence.name == "decoder_input"
