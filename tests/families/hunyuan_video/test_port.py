"""hunyuan_video: the port's first tests; each fails, naming what to fill in, until that part is done."""

import importlib
from pathlib import Path

import yaml

FAMILY = "hunyuan_video"
PACKAGE = "workbench.families.hunyuan_video"


def test_registered():
    from workbench import registry

    assert registry.get_family(FAMILY).pipeline_class.__name__ == "NativeHunyuanVideoPipeline"


def test_official_pipeline_is_a_diffusers_class():
    import diffusers

    config = importlib.import_module(f"{PACKAGE}.config")
    name = config.OFFICIAL_PIPELINE.rpartition(".")[2]
    assert isinstance(getattr(diffusers, name, None), type), (
        f"{config.__file__}: OFFICIAL_PIPELINE {config.OFFICIAL_PIPELINE!r} is not a diffusers class: "
        f"name the pipeline this family ports")


def test_official_defaults_are_recorded():
    config = importlib.import_module(f"{PACKAGE}.config")
    assert config.DEFAULTS, (f"{config.__file__}: DEFAULTS is empty: record the official __call__ defaults "
                             f"as Sourced(value, source)")


def test_reference_builds_offline(tmp_path):
    reference = importlib.import_module(f"{PACKAGE}.reference")
    out = reference.build_reference(tmp_path, "tiny")
    assert (out / "official" / "model_index.json").is_file() and (out / "converted" / "model_index.json").is_file()


def test_smoke_generates_finite_output():
    import torch

    from workbench.api.generate import generate

    output = generate(FAMILY, device="cpu", progress=False).output
    assert output.numel() and torch.isfinite(output).all()


def test_pipeline_parity_exact():
    from workbench.parity.runner import run_parity

    verdict = run_parity(FAMILY).verdict
    assert verdict.passed, verdict.summary_table()


def test_notebook_parameters_name_a_registered_preset():
    from workbench import registry

    params = yaml.safe_load((Path(importlib.import_module(PACKAGE).__file__).parent
                             / "notebook_parameters.yaml").read_text())
    assert registry.get_family(params["family"]).preset(params["preset"]).name == params["preset"]
