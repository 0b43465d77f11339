"""The native Wan DiT (workbench/components/wan_transformer.py) against diffusers'
WanTransformer3DModel: same official weights loaded through the converter and the strict
loader, same inputs, fp32 and bf16; plus the loader's refusals and the fast-mode wiring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from workbench.components.wan_transformer import (
    WanTransformer,
    WanTransformerConfig,
    convert_state_dict,
)
from workbench.errors import ComponentLoadError
from workbench.runtime.loader import load_module, load_state_strict
from workbench.runtime.manifest import ModuleSpec
from workbench.runtime.pipeline import place_module

NATIVE = ModuleSpec("transformer", "workbench", "WanTransformer")


def _official(folder, dtype=None):
    from diffusers import WanTransformer3DModel

    from workbench.families.offline import clone_parameters

    kwargs = {"torch_dtype": dtype} if dtype else {}
    return clone_parameters(WanTransformer3DModel.from_pretrained(str(folder), **kwargs)).eval()


def _randomized(model, seed: int):
    """Every parameter drawn at random, so zero-initialised tables cannot hide a wiring fault."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def _inputs(cfg, seed: int, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    frames, height, width = (int(n) for n in torch.randint(1, 4, (3,), generator=g))
    p_t, p_h, p_w = cfg.patch_size
    return dict(hidden_states=torch.randn(batch, cfg.in_channels, frames * p_t, (height + 1) * p_h,
                                          (width + 2) * p_w, generator=g),
                timestep=torch.rand(batch, generator=g) * 1000,
                encoder_hidden_states=torch.randn(batch, 7, cfg.text_dim, generator=g))


def _run(model, inputs):
    with torch.no_grad():
        return model(**inputs, return_dict=False)[0]


@pytest.fixture(scope="module")
def transformer_dir(reference_dir, tmp_path_factory):
    """The tiny official transformer with every weight re-drawn at random, saved as diffusers does."""
    folder = tmp_path_factory.mktemp("wan_dit") / "transformer"
    official = _randomized(_official(reference_dir("wan_t2v") / "official" / "transformer"), seed=7)
    official.save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_native_matches_official_fp32(transformer_dir, seed):
    official = _official(transformer_dir)
    native = load_module(transformer_dir.parent, NATIVE)
    assert isinstance(native, WanTransformer)
    inputs = _inputs(official.config, seed)
    expected, got = _run(official, inputs), _run(native, inputs)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    scale = expected.abs().mean().item()
    assert scale > 0.1  # the check below is not vacuous
    assert (got - expected).abs().max().item() <= 1e-5 * max(scale, 1.0), "fp32 native DiT drifted from diffusers"


def test_native_matches_official_bf16(transformer_dir):
    """Both sides as fast parity loads them: diffusers via from_pretrained(torch_dtype=bf16),
    native cast by place_module; both keep the same tables in fp32."""
    official = _official(transformer_dir, torch.bfloat16)
    native = place_module(load_module(transformer_dir.parent, NATIVE), torch.device("cpu"), torch.bfloat16)
    assert native.dtype == torch.bfloat16 and native.blocks[0].modulation.dtype == torch.float32
    inputs = _inputs(official.config, seed=3)
    inputs = {k: v.to(torch.bfloat16) if k != "timestep" else v for k, v in inputs.items()}
    expected, got = _run(official, inputs).float(), _run(native, inputs).float()
    cosine = torch.nn.functional.cosine_similarity(expected.flatten(), got.flatten(), dim=0).item()
    assert cosine >= 0.9999, cosine


def test_a_converted_weight_fault_shows(transformer_dir):
    """The comparison can fail: one fused projection slice perturbed after conversion."""
    official = _official(transformer_dir)
    native = load_module(transformer_dir.parent, NATIVE)
    with torch.no_grad():
        native.blocks[0].self_attn.qkv.weight[-1] += 0.05  # a row of v only
    inputs = _inputs(official.config, seed=0)
    assert (_run(native, inputs) - _run(official, inputs)).abs().max().item() > 1e-3


def test_converter_fuses_qkv_in_order(transformer_dir):
    state = load_file(str(next(transformer_dir.glob("*.safetensors"))))
    native = convert_state_dict(state)
    fused = native["blocks.1.self_attn.qkv.weight"]
    q, k, v = fused.chunk(3)
    assert torch.equal(q, state["blocks.1.attn1.to_q.weight"])
    assert torch.equal(k, state["blocks.1.attn1.to_k.weight"])
    assert torch.equal(v, state["blocks.1.attn1.to_v.weight"])
    assert torch.equal(native["blocks.1.cross_attn.kv.bias"],
                       torch.cat([state["blocks.1.attn2.to_k.bias"], state["blocks.1.attn2.to_v.bias"]]))
    assert sum(t.numel() for t in native.values()) == sum(t.numel() for t in state.values())


@pytest.fixture
def broken_transformer(transformer_dir, tmp_path):
    folder = tmp_path / "transformer"
    shutil.copytree(transformer_dir, folder)
    weights = next(folder.glob("*.safetensors"))
    return folder, weights


def _drop(key):
    return lambda state: state.pop(key)


def _put(key, tensor):
    return lambda state: state.__setitem__(key, tensor)


@pytest.mark.parametrize("edit, message", [
    (_drop("blocks.0.attn1.to_k.weight"), r"missing official keys \['blocks\.0\.attn1\.to_k\.weight'\]"),
    (_put("blocks.0.attn1.extra_gate", torch.zeros(3)), r"unexpected official keys \['blocks\.0\.attn1\.extra_gate'\]"),
    (_put("proj_out.bias", torch.zeros(3)), r"head\.bias: file \(3,\)"),
], ids=["missing", "unexpected", "mis-shaped"])
def test_weight_faults_are_named(broken_transformer, edit, message):
    folder, weights = broken_transformer
    state = load_file(str(weights))
    edit(state)
    save_file(state, str(weights))
    with pytest.raises(ComponentLoadError, match=message) as raised:
        load_module(folder.parent, NATIVE)
    assert str(folder) in str(raised.value)


@pytest.mark.parametrize("change, message", [
    ({"added_kv_proj_dim": 16, "image_dim": 16}, "image-to-video checkpoints"),
    ({"window_size": [-1, -1]}, r"config keys \['window_size'\]"),
    ({"_class_name": "WanVACETransformer3DModel"}, "WanVACETransformer3DModel"),
])
def test_unsupported_configs_are_refused(broken_transformer, change, message):
    folder, _ = broken_transformer
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ComponentLoadError, match=message) as raised:
        load_module(folder.parent, NATIVE)
    assert "config.json" in str(raised.value)


def test_state_loading_refuses_a_model_mismatch():
    config = WanTransformerConfig(num_attention_heads=2, attention_head_dim=12, text_dim=32, ffn_dim=32, num_layers=1)
    model = WanTransformer(config)
    state = dict(model.state_dict())
    state.pop("head.weight")
    with pytest.raises(ComponentLoadError, match="missing keys"):
        load_state_strict(model, state, folder=Path("<memory>"))


def test_fast_mode_loads_the_native_dit_and_exact_mode_the_official(reference_dir):
    from workbench.api.generate import load_pipeline

    converted = reference_dir("wan_t2v") / "converted"
    fast = load_pipeline(converted, device="cpu", mode="fast", progress=False)
    exact = load_pipeline(converted, device="cpu", mode="exact", progress=False)
    assert isinstance(fast.transformer, WanTransformer) and fast.transformer.dtype == torch.bfloat16
    assert type(exact.transformer).__name__ == "WanTransformer3DModel"
    i2v = load_pipeline(reference_dir("wan_i2v") / "converted", device="cpu", mode="fast", progress=False)
    assert type(i2v.transformer).__name__ == "WanTransformer3DModel"  # image cross-attention: diffusers class


def test_compile_prefers_repeated_blocks(monkeypatch):
    from workbench.runtime.pipeline import compile_module

    config = WanTransformerConfig(num_attention_heads=2, attention_head_dim=12, text_dim=32, ffn_dim=32, num_layers=2)
    model = WanTransformer(config)
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    compile_module(model)
    assert compiled == ["WanBlock", "WanBlock"]
    compiled.clear()
    compile_module(torch.nn.Linear(2, 2))
    assert compiled == ["Linear"]
