"""ComposedPipeline construction: exact class resolution, required modules, strict loading."""

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import edit_manifest
from workbench.errors import ComponentLoadError, ManifestError, RegistryError
from workbench.families.wan.pipeline import NativeWanPipeline
from workbench.runtime.pipeline import ComposedPipeline


def load(path):
    return ComposedPipeline.from_pretrained(path / "converted", device="cpu", progress=False)


def test_resolves_exact_class_and_fixed_stage_chain(wan_dir):
    pipe = load(wan_dir)
    assert type(pipe) is NativeWanPipeline
    assert pipe.stage_names == ["InputValidationStage", "TextEncodingStage", "ConditioningStage",
                                "TimestepPreparationStage", "LatentPreparationStage", "DenoisingStage",
                                "DecodingStage"]
    assert pipe.get_module("transformer_2") is None
    assert pipe.get_module("transformer_2", "absent") == "absent"


def test_unknown_class_name_is_refused(wan_copy):
    edit_manifest(wan_copy / "converted", _class_name="WanPipelin")
    with pytest.raises(RegistryError, match="'WanPipelin' is not a registered pipeline class"):
        load(wan_copy)


def test_official_class_name_is_not_silently_accepted(wan_copy):
    """The official directory names diffusers' class, not ours: exact resolution refuses it."""
    with pytest.raises(RegistryError, match="'WanPipeline'"):
        ComposedPipeline.from_pretrained(wan_copy / "official", device="cpu")


def test_missing_module_folder(wan_copy):
    shutil.rmtree(wan_copy / "converted" / "vae")
    with pytest.raises(ComponentLoadError, match=r"vae: module folder for 'vae' is missing"):
        load(wan_copy)


def test_required_module_disabled_or_absent(wan_copy):
    edit_manifest(wan_copy / "converted", vae=[None, None])
    with pytest.raises(ManifestError, match=r"disabled \(\[null, null\]\) \['vae'\]"):
        load(wan_copy)
    edit_manifest(wan_copy / "converted", vae=None)  # metadata now, so the module is absent
    with pytest.raises(ManifestError, match=r"missing \['vae'\]"):
        load(wan_copy)


def test_required_modules_are_per_instance(wan_copy, wan_dir):
    """A manifest with a boundary_ratio adds transformer_2 to that instance only."""
    shutil.copytree(wan_copy / "converted" / "transformer", wan_copy / "converted" / "transformer_2")
    edit_manifest(wan_copy / "converted", boundary_ratio=0.5,
                  transformer_2=["diffusers", "WanTransformer3DModel"])
    before = NativeWanPipeline._required_config_modules
    two = load(wan_copy)
    one = load(wan_dir)
    assert "transformer_2" in two.required_modules and two.get_module("transformer_2") is not None
    assert "transformer_2" not in one.required_modules
    assert NativeWanPipeline._required_config_modules == before
    assert isinstance(before, tuple) and "transformer_2" not in before
    assert two.required_modules is not one.required_modules


def test_boundary_ratio_without_second_expert_fails(wan_copy):
    edit_manifest(wan_copy / "converted", boundary_ratio=0.5)
    with pytest.raises(ManifestError, match=r"disabled \(\[null, null\]\) \['transformer_2'\]"):
        load(wan_copy)


def test_unexpected_and_missing_weight_keys_are_listed(wan_copy):
    f = wan_copy / "converted" / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(f))
    key = sorted(state)[0]
    state["not_a_layer.weight"] = state.pop(key)
    save_file(state, str(f))
    with pytest.raises(ComponentLoadError, match=rf"missing keys \['{key}'\]; unexpected keys \['not_a_layer.weight'\]"):
        load(wan_copy)


def test_wrong_shape_weights(wan_copy):
    f = wan_copy / "converted" / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(f))
    key = next(k for k, v in sorted(state.items()) if v.ndim == 2)
    state[key] = torch.zeros(3, 3)
    save_file(state, str(f))
    with pytest.raises(ComponentLoadError, match=rf"do not fit the config: {key}"):
        load(wan_copy)


def test_corrupt_safetensors(wan_copy):
    f = wan_copy / "converted" / "vae" / "diffusion_pytorch_model.safetensors"
    f.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ComponentLoadError, match=r"vae/diffusion_pytorch_model.safetensors: unreadable"):
        load(wan_copy)


def test_pickle_weights_are_refused(wan_copy):
    folder = wan_copy / "converted" / "vae"
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ComponentLoadError, match="only pickle weights"):
        load(wan_copy)


def test_unknown_library_class(wan_copy):
    edit_manifest(wan_copy / "converted", vae=["diffusers", "NoSuchAutoencoder"])
    with pytest.raises(ComponentLoadError, match="diffusers has no class 'NoSuchAutoencoder'"):
        load(wan_copy)
