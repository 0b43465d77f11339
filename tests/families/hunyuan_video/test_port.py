"""hunyuan_video: the port's first tests; each fails, naming what to fill in, until that part is done."""

import importlib
from pathlib import Path

import pytest
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


def test_reference_builds_offline():
    """The cached tiny build: the official modules as HunyuanVideoPipeline.__init__ names them, the
    converted manifest naming the native class; its tokenizers rebuilt here are byte-identical."""
    import inspect
    import json
    import tempfile

    import diffusers

    from workbench.references import ensure_reference

    reference = importlib.import_module(f"{PACKAGE}.reference")
    out = ensure_reference(__import__("workbench.registry", fromlist=["x"]).get_family(FAMILY))
    official = json.loads((out / "official" / "model_index.json").read_text())
    converted = json.loads((out / "converted" / "model_index.json").read_text())
    modules = [p for p in inspect.signature(diffusers.HunyuanVideoPipeline.__init__).parameters if p != "self"]
    assert sorted(k for k, v in official.items() if isinstance(v, list)) == sorted(modules)
    assert official["_class_name"] == "HunyuanVideoPipeline" and converted["_class_name"] == reference.NATIVE_CLASS
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    from workbench.families.offline_tokenizers import clip_tokenizer, llama_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        llama_tokenizer(1024, reference.LLAMA_VOCAB, DEFAULT_PROMPT_TEMPLATE["template"],
                        reference.TEMPLATE_TOKENS).save_pretrained(Path(tmp) / "tokenizer")
        clip_tokenizer(77).save_pretrained(Path(tmp) / "tokenizer_2")
        for name in ("tokenizer", "tokenizer_2"):
            assert (Path(tmp) / name / "tokenizer.json").read_bytes() == (out / "official" / name / "tokenizer.json").read_bytes()


def test_smoke_generates_finite_output():
    import torch

    from workbench.api.generate import generate

    output = generate(FAMILY, device="cpu", progress=False).output
    assert output.numel() and torch.isfinite(output).all()


def test_pipeline_parity_exact():
    """tiny-ci runs true CFG (both branches); bitwise on CPU at every checkpoint."""
    from workbench.parity.runner import run_parity

    verdict = run_parity(FAMILY).verdict
    assert verdict.passed, verdict.summary_table()
    assert all(c.metrics.max_abs_diff == 0.0 for c in verdict.checkpoints), verdict.summary_table()
    assert "negative_prompt_embeds" in {c.name for c in verdict.checkpoints}


def test_pipeline_parity_exact_official_default_one_branch():
    """true_cfg_scale at its official default (1.0): one transformer call per step, no negative."""
    from workbench.parity.runner import run_parity

    verdict = run_parity(FAMILY, request={"true_cfg_scale": 1.0, "seed": 7}).verdict
    assert verdict.passed, verdict.summary_table()
    names = {c.name for c in verdict.checkpoints}
    assert "negative_prompt_embeds" not in names and "latents_step_002" in names


@pytest.mark.parametrize("value, message", [
    ("abc", "true_cfg_scale: expected a number, got str 'abc'"),
    ("-1", "true_cfg_scale: expected at least 0.0, got -1"),
    ("true", "true_cfg_scale: expected a number, got bool True"),
])
def test_family_field_refused_in_one_line(tmp_path, capsys, value, message):
    from workbench.cli import main

    assert main(["generate", FAMILY, "--out", str(tmp_path / "x.mp4"), "--set", f"true_cfg_scale={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "true_cfg_scale: float = 1.0" in err and len(err.splitlines()) == 1


def test_notebook_parameters_name_a_registered_preset():
    from workbench import registry

    params = yaml.safe_load((Path(importlib.import_module(PACKAGE).__file__).parent
                             / "notebook_parameters.yaml").read_text())
    assert registry.get_family(params["family"]).preset(params["preset"]).name == params["preset"]
