"""Generic image probes and the Wan image-to-video transformer probe on tiny saved modules."""

import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from workbench.portstate.components import check_component

# A stand-in family: check_component needs only a name and the package its probes live in.
FAMILY = SimpleNamespace(name="probe_test", reference_module="workbench.families.wan.reference")


@pytest.fixture(scope="module")
def image_build(tmp_path_factory):
    from diffusers import WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    root = tmp_path_factory.mktemp("image_build")
    official = root / "official"
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     image_size=32, patch_size=8)).eval().save_pretrained(official / "image_encoder")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        official / "image_processor")
    WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
                          out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, image_dim=16,
                          added_kv_proj_dim=24).eval().save_pretrained(official / "transformer")
    processor_class = json.loads((official / "image_processor" / "preprocessor_config.json").read_text()).get(
        "image_processor_type", "CLIPImageProcessor")
    manifest = {"_class_name": "OfficialPipeline", "image_encoder": ["transformers", "CLIPVisionModel"],
                "image_processor": ["transformers", processor_class],
                "transformer": ["diffusers", "WanTransformer3DModel"]}
    (official / "model_index.json").write_text(json.dumps(manifest))
    shutil.copytree(official, root / "converted")
    return root


@pytest.mark.parametrize("module, outputs", [
    ("image_encoder", {"last_hidden_state", "pooler_output", "hidden_states_0", "hidden_states_2"}),
    ("image_processor", {"pixel_values"}),
    ("transformer", {"noise_pred"}),
])
def test_image_components_match_exactly(image_build, module, outputs):
    result = check_component(FAMILY, image_build, module)
    assert result.status == "non_skip_pass", result.line()
    assert outputs <= set(result.evidence.outputs) and result.evidence.max_abs_diff == 0.0


def test_a_changed_image_processor_config_fails(image_build, tmp_path):
    root = tmp_path / "build"
    shutil.copytree(image_build, root)
    config_path = root / "converted" / "image_processor" / "preprocessor_config.json"
    config = json.loads(config_path.read_text())
    config["image_mean"] = [0.5, 0.5, 0.5]
    config_path.write_text(json.dumps(config))
    result = check_component(FAMILY, root, "image_processor")
    assert result.status == "failed" and result.evidence.max_abs_diff > 0
