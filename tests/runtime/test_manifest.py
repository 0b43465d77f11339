"""Manifest rules: modules vs metadata, disabled modules, clear errors naming the file."""

import json

import pytest

from workbench.errors import ManifestError
from workbench.runtime.manifest import read_manifest


def write(tmp_path, text):
    (tmp_path / "model_index.json").write_text(text)
    return tmp_path


def test_modules_metadata_and_disabled(tmp_path):
    m = read_manifest(write(tmp_path, json.dumps({
        "_class_name": "NativeWanPipeline", "_diffusers_version": "0.42.1",
        "transformer": ["diffusers", "WanTransformer3DModel"], "transformer_2": [None, None],
        "boundary_ratio": None, "expand_timesteps": False})))
    assert m.class_name == "NativeWanPipeline"
    assert set(m.modules) == {"transformer", "transformer_2"}
    assert m.modules["transformer_2"].disabled and not m.modules["transformer"].disabled
    assert m.enabled_modules == ["transformer"]
    assert m.metadata == {"boundary_ratio": None, "expand_timesteps": False}


def test_invalid_json_names_file_and_position(tmp_path):
    write(tmp_path, '{"_class_name": "X",\n  "vae": ["diffusers", ]\n}')
    with pytest.raises(ManifestError, match=r"model_index.json: invalid JSON at line 2"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("body, field", [
    ({"vae": ["diffusers", "AutoencoderKLWan"]}, "_class_name"),
    ({"_class_name": "X", "vae": ["diffusers"]}, "'vae'"),
    ({"_class_name": "X", "vae": [None, "AutoencoderKLWan"]}, "'vae'"),
])
def test_bad_fields_are_named(tmp_path, body, field):
    write(tmp_path, json.dumps(body))
    with pytest.raises(ManifestError, match=field):
        read_manifest(tmp_path)


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(ManifestError, match="model_index.json: missing"):
        read_manifest(tmp_path)
