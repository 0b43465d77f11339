"""Wan image-to-video smoke tests: image inputs and their errors, preprocessing pieces, `workbench generate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.families.offline import gradient_image
from workbench.families.wan_i2v.pipeline import first_frame_mask, image_to_tensor

pytestmark = pytest.mark.usefixtures("single_torch_thread")

FAMILY = "wan_i2v"


def test_generate_with_image_file_writes_video(cli, tmp_path):
    image = tmp_path / "first frame.png"
    gradient_image(64, 48).save(image)
    out = tmp_path / "i2v.mp4"
    code, stdout, _ = cli("generate", FAMILY, "--image", image, "--out", out, "--frames-dir", tmp_path / "frames")
    assert code == 0 and out.stat().st_size > 0
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 9
    sidecar = json.loads(out.with_name("i2v.mp4.json").read_text())
    assert sidecar["parameters"]["image"] == str(image)


def make_unsupported(path):
    Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64).save(path)  # 16-bit grayscale


@pytest.mark.parametrize("name, make, message", [
    ("missing.png", None, "no such file"),
    ("not-an-image.png", lambda p: p.write_bytes(b"plain text"), "cannot be read as an image"),
    ("sixteen-bit.png", make_unsupported, "mode 'I;16' is not supported"),
])
def test_bad_image_is_a_clear_error_naming_the_file(cli, tmp_path, name, make, message):
    path = tmp_path / name
    if make is not None:
        make(path)
    code, _, err = cli("generate", FAMILY, "--image", path, "--out", tmp_path / "x.mp4")
    assert code == 2
    assert str(path) in err and message in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_text_length_other_than_512_is_refused(cli, tmp_path):
    code, _, err = cli("generate", FAMILY, "--set", "max_sequence_length=64", "--out", tmp_path / "x.mp4")
    assert code == 2 and "field 'max_sequence_length' expected 512" in err


def test_image_to_tensor_resizes_and_scales_to_minus_one_one():
    image = Image.new("RGB", (40, 24), (255, 0, 128))
    tensor = image_to_tensor(image, height=16, width=32)
    assert tensor.shape == (1, 3, 16, 32) and tensor.dtype == torch.float32
    torch.testing.assert_close(tensor[0, :, 0, 0], torch.tensor([1.0, -1.0, 128 / 255 * 2 - 1]))


def test_first_frame_mask_marks_only_the_given_frame():
    mask = first_frame_mask(batch_size=2, num_frames=9, height=4, width=4, temporal_scale=4)
    assert mask.shape == (2, 4, 3, 4, 4)  # 4 mask channels per latent frame; 9 frames -> 3 latent frames
    assert bool((mask[:, :, 0] == 1).all()) and bool((mask[:, :, 1:] == 0).all())


def test_batched_guidance_shares_the_image_condition(reference_dir):
    """`DenoisingStage.cfg="batched"` calls the transformer once on [uncond, cond]; both halves
    need the image latents and embeddings, so the result matches the two-call (official) order."""
    from workbench import registry
    from workbench.api.generate import load_pipeline

    pipe = load_pipeline(reference_dir(FAMILY) / "converted", device="cpu", progress=False)
    params = registry.get_family(FAMILY).sampling_params("tiny-ci", dict(num_inference_steps=2, num_frames=5))
    sequential = pipe(params).output
    stage = pipe.stage("DenoisingStage")
    stage.cfg = "batched"
    try:
        batched = pipe(params).output
    finally:
        stage.cfg = "sequential"
    torch.testing.assert_close(batched, sequential, rtol=0, atol=1e-5)
