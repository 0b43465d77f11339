"""`workbench handoff`: every field computed from the registry, manifests, config, presets and gates."""

import json

from tests.conftest import edit_manifest
from workbench import registry
from workbench.cli import main
from workbench.portstate.handoff import build_handoff

WAN = registry.get_family("wan_t2v")


def test_wan_handoff_fields(wan_dir):
    report = build_handoff(WAN)
    rows = {m.name: m for m in report.modules}
    assert {n: (m.pipeline, m.verdict) for n, m in rows.items()} == {
        "scheduler": ("required", "match"), "text_encoder": ("required", "match"), "tokenizer": ("required", "match"),
        "transformer": ("required", "match"), "transformer_2": ("optional", "match"), "vae": ("required", "match")}
    assert not rows["transformer_2"].loaded and rows["vae"].loaded
    assert report.stage_chain == ["InputValidationStage", "TextEncodingStage", "ConditioningStage",
                                  "TimestepPreparationStage", "LatentPreparationStage", "DenoisingStage",
                                  "DecodingStage"]
    assert "NativeWanPipeline -> NativeWanPipeline (match" in report.class_resolution["converted _class_name"]
    defaults = {d.field: (d.official, d.verdict) for d in report.defaults}
    assert defaults["height"] == ("480", "match") and defaults["num_inference_steps"] == ("50", "match")
    assert defaults["negative_prompt"] == ("None", "differs")  # the official body turns None into ''
    assert defaults["fps"] == ("-", "not a call argument")
    assert report.official_defaults_not_recorded == {"prompt": "None", "guidance_scale_2": "None",
                                                     "output_type": "'np'"}
    tiny = next(p for p in report.presets if p.preset.startswith("tiny-ci"))
    assert tiny.undeclared == [] and tiny.overrides["height"] == ["480", "32"]
    assert report.detectors[-1] == "tiny build selects family 'wan_t2v': match"
    assert report.gates["component_parity"]["result"] == "pass"
    assert "diffusers.WanPipeline built offline" in report.comparison_target
    assert report.decisions[0].startswith("D001 Reuse") and report.open_rows == []
    assert report.blockers == [] and report.next_step == \
        "all gates pass; next phase: quality regression"


def test_computed_mismatches_become_blockers(wan_copy):
    edit_manifest(wan_copy / "official", _class_name="WanImageToVideoPipeline")
    edit_manifest(wan_copy / "converted", vae=[None, None])
    report = build_handoff(WAN, wan_copy)
    assert report.stage_chain == []
    first = report.blockers[0]
    assert first.startswith("the native pipeline does not load:") and "requires modules" in first
    assert "module vae: mismatch: required but disabled in the converted model_index" in report.blockers
    assert any(b.startswith("class resolution: official _class_name: WanImageToVideoPipeline (MISMATCH")
               for b in report.blockers)
    assert report.next_step.startswith("fix the native pipeline does not load")


def test_cli_prints_and_writes_json(wan_dir, tmp_path, capsys):
    assert main(["handoff", "wan_t2v", "--json", str(tmp_path / "h.json")]) == 0
    out = capsys.readouterr().out
    for heading in ("required modules emitted vs model_index:", "class resolution:",
                    "stage chain: InputValidationStage",
                    "config defaults vs the official call defaults:", "presets (keys vs SamplingParam fields):",
                    "registry detectors:", "gates:", "comparison target:", "blockers:", "next step:"):
        assert heading in out
    data = json.loads((tmp_path / "h.json").read_text())
    assert data["family"] == "wan_t2v" and data["gates"]["smoke"]["result"] == "pass"
