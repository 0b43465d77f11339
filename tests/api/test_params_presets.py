"""SamplingParam precedence and unknown keys; presets: lint, duplicates, versions, overrides."""

import dataclasses

import pytest

from workbench import registry
from workbench.api.params import SamplingParam, parse_assignments
from workbench.api.presets import InferencePreset, PresetTable, parse_overrides
from workbench.api.workload import WorkloadType
from workbench.errors import ParameterError, RegistryError
from workbench.runtime.batch import ForwardBatch


def preset(name="p", version=1, **defaults):
    return InferencePreset("fam", name, version, WorkloadType.T2V, "test preset", defaults,
                           stage_schemas={"DenoisingStage": {"cfg": ("sequential", "batched"), "progress": bool}})


def test_every_sampling_param_field_exists_on_forward_batch():
    missing = set(SamplingParam.field_names()) - {"stage_overrides"} - ForwardBatch.field_names()
    assert not missing


def test_unknown_key_lists_nearest_names():
    with pytest.raises(ParameterError, match=r"unknown parameter 'guidance_scal'; did you mean guidance_scale"):
        SamplingParam.resolve({"guidance_scal": 3.0}, where=("request",))
    with pytest.raises(ParameterError, match="--set: unknown parameter 'num_step'"):
        parse_assignments(["num_step=3"])


def test_precedence_class_family_preset_request():
    fam = registry.get_family("wan_t2v")
    p = fam.sampling_params("tiny-ci", {"seed": 7, "height": 64})
    assert p.seed == 7 and p.height == 64                 # request wins
    assert p.num_inference_steps == 3                      # preset over official default (50)
    assert p.max_sequence_length == 16
    assert fam.sampling_params("wan2.1-1.3b-480p").max_sequence_length == 512
    assert p.guidance_scale_2 is None                      # class default where nobody sets it
    official = SamplingParam.resolve(fam.default_values())
    assert (official.height, official.width, official.num_frames) == (480, 832, 81)


def test_set_values_are_typed_and_text_stays_text():
    out = parse_assignments(["seed=3", "guidance_scale=4.5", "prompt=123", "negative_prompt=null"])
    assert out == {"seed": 3, "guidance_scale": 4.5, "prompt": "123", "negative_prompt": "null"}
    with pytest.raises(ParameterError, match="expected KEY=VALUE"):
        parse_assignments(["seed"])


def test_preset_lint_refuses_undeclared_keys():
    table = PresetTable()
    with pytest.raises(ParameterError, match="preset fam/p@v1: unknown parameter 'guidance'"):
        table.add_all([preset(guidance=3.0)])


def test_duplicate_presets_and_highest_version():
    table = PresetTable()
    table.add_all([preset(version=1, seed=1), preset(version=2, seed=2)])
    assert table.get("fam", "p").version == 2
    assert table.get("fam", "p", 1).defaults["seed"] == 1
    with pytest.raises(RegistryError, match="duplicate preset fam/p@v2"):
        table.add_all([preset(version=2)])
    with pytest.raises(RegistryError, match="no preset 'q' for family 'fam'"):
        table.get("fam", "q")


def test_presets_are_frozen():
    p = preset(seed=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "other"
    with pytest.raises(TypeError):
        p.defaults["seed"] = 2


@pytest.mark.parametrize("overrides, message", [
    (["Denoising.cfg=batched"], "unknown stage 'Denoising'"),
    (["DenoisingStage.order=2"], "unknown key 'order'"),
    (["DenoisingStage.cfg=parallel"], "expected \\('sequential', 'batched'\\)"),
    (["DenoisingStage.cfg=batched", "DenoisingStage.cfg=sequential"], "conflicting values 'batched' and 'sequential'"),
])
def test_stage_override_errors(overrides, message):
    with pytest.raises(ParameterError, match=message):
        preset().validate_overrides(parse_overrides(overrides))


def test_stage_override_accepted_and_grouped():
    grouped = preset().validate_overrides(parse_overrides(["DenoisingStage.cfg=batched", "DenoisingStage.progress=false"]))
    assert grouped == {"DenoisingStage": {"cfg": "batched", "progress": False}}


def test_registered_presets_pass_lint_and_every_family_has_its_default():
    for fam in registry.FAMILIES.values():
        assert fam.preset().name == fam.default_preset
        for p in registry.PRESETS.for_family(fam.name):
            p.lint()
