"""The attention backend choice (runtime/attention.py) on a machine without CUDA or FA4.

No CUDA-only code runs here: the selection logic takes the device capability, whether FA4
imports, and the kernel as arguments, so each fallback branch is exercised on CPU with a
stand-in kernel. The parity probe runs for real on CPU tensors (fp64 reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from workbench.components import wan_transformer
from workbench.runtime import attention as attn

CUDA = torch.device("cuda", 0)  # only passed as a value: nothing here allocates on it
BF16 = torch.bfloat16


def _reference_kernel():
    """A correct attention kernel, independent of `attn._sdpa`: softmax(q k^T / sqrt(d)) v."""
    def run(q, k, v):
        qh, kh, vh = (t.transpose(1, 2).double() for t in (q, k, v))
        w = torch.softmax(qh @ kh.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        return (w @ vh).transpose(1, 2).to(q.dtype)
    return run


def _broken_kernel():
    def run(q, k, v):
        return torch.flip(v, dims=[1])  # right shape, wrong values
    return run


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(attn.ENV_VAR, raising=False)
    attn.reset()
    yield
    attn.reset()


def test_cpu_always_sdpa():
    sel = attn.choose(torch.device("cpu"), BF16, importable=True, capability=(9, 0))
    assert sel.backend == "sdpa" and "CUDA" in sel.reason


def test_cpu_attention_is_plain_sdpa_bitwise():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 40, 3, 16, generator=gen) for _ in range(3))
    expected = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    assert torch.equal(wan_transformer.attention(q, k, v), expected)
    assert attn._selected == {}  # CPU never runs the selection


def test_fallback_when_fa4_not_installed():
    sel = attn.choose(CUDA, BF16, capability=(9, 0), importable=False)
    assert sel.backend == "sdpa" and "not installed" in sel.reason


def test_fallback_on_unsupported_capability_and_dtype():
    assert attn.choose(CUDA, BF16, capability=(8, 0), importable=True).backend == "sdpa"
    assert attn.choose(CUDA, torch.float32, capability=(9, 0), importable=True).backend == "sdpa"


def test_env_forces_sdpa(monkeypatch):
    monkeypatch.setenv(attn.ENV_VAR, "sdpa")
    sel = attn.choose(CUDA, BF16, capability=(9, 0), importable=True, kernel_factory=_reference_kernel)
    assert sel.backend == "sdpa" and attn.ENV_VAR in sel.reason


def test_env_bad_value_is_refused(monkeypatch):
    monkeypatch.setenv(attn.ENV_VAR, "fa5")
    with pytest.raises(ValueError, match=attn.ENV_VAR):
        attn.choose(CUDA, BF16, capability=(9, 0), importable=True)


def _cpu_probe(monkeypatch):
    """Run the probe's tensors on the CPU while the selection believes it is on CUDA."""
    real = attn.probe
    monkeypatch.setattr(attn, "probe", lambda kernel, device, dtype: real(kernel, torch.device("cpu"), dtype,
                                                                          shape=(1, 64, 2, 32)))


def test_fa4_chosen_when_it_holds_parity(monkeypatch):
    _cpu_probe(monkeypatch)
    sel = attn.choose(CUDA, BF16, capability=(9, 0), importable=True, kernel_factory=_reference_kernel)
    assert sel.backend == "fa4", sel.reason
    assert sel.probe["cosine"] >= attn.PROBE_MIN_COSINE and sel.probe["max_abs"] <= attn.PROBE_MAX_ABS


def test_fallback_when_fa4_out_of_parity(monkeypatch):
    _cpu_probe(monkeypatch)
    sel = attn.choose(CUDA, BF16, capability=(9, 0), importable=True, kernel_factory=_broken_kernel)
    assert sel.backend == "sdpa" and "out of parity" in sel.reason
    assert sel.probe["cosine"] < attn.PROBE_MIN_COSINE


def test_fallback_when_fa4_raises(monkeypatch):
    def failing():
        raise RuntimeError("cute DSL JIT failed\nsecond line")
    sel = attn.choose(CUDA, BF16, capability=(9, 0), importable=True, kernel_factory=failing)
    assert sel.backend == "sdpa" and "cute DSL JIT failed" in sel.reason and "second line" not in sel.reason


def test_probe_catches_unwritten_output():
    def partial(q, k, v):
        out = torch.full_like(q, float("nan"))
        out[:, :-1] = _reference_kernel()(q, k, v)[:, :-1]
        return out
    result = attn.probe(partial, torch.device("cpu"), BF16, shape=(1, 32, 1, 16))
    assert not result["cosine"] >= attn.PROBE_MIN_COSINE  # NaN fails every comparison


def test_fa4_importable_follows_find_spec(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert attn.fa4_importable() is False
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert attn.fa4_importable() is True


def test_custom_op_matches_sdpa_and_passes_opcheck():
    """The op torch.compile sees on CUDA: its fake (meta) impl and eager impl agree; on CPU tensors
    it computes plain SDPA."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 24, 2, 8, generator=gen) for _ in range(3))
    k, v = k[:, :16], v[:, :16]  # cross-attention: a shorter key sequence
    out = attn._attention_op(q, k, v)
    assert out.shape == q.shape and torch.equal(out, attn._sdpa(q, k, v).contiguous())
    torch.library.opcheck(attn._attention_op, (q, k, v))


def test_fa4_runs_only_on_long_key_sequences(monkeypatch):
    """With FA4 selected, self-attention (long keys) goes to FA4, cross-attention (short keys) to SDPA."""
    calls = []
    attn._selected[("cpu", BF16)] = attn.Selection("fa4", "test")

    def fake_kernel(q, k, v):
        calls.append(k.shape[1])
        return attn._sdpa(q, k, v)

    attn._kernels["fa4"] = fake_kernel
    q = torch.randn(1, 8, 1, 16, dtype=BF16)
    short = torch.randn(1, attn.FA4_MIN_KV_TOKENS - 1, 1, 16, dtype=BF16)
    long = torch.randn(1, attn.FA4_MIN_KV_TOKENS, 1, 16, dtype=BF16)
    attn._run(q, short, short)
    attn._run(q, long, long)
    assert calls == [attn.FA4_MIN_KV_TOKENS]
