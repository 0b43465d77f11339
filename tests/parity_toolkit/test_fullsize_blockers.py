"""The three problems that stopped the full-size CUDA self-check of Wan 2.1 (benchmarks/NOTES.md,
"CUDA fp32 self-check", issue 16 item 7), each seen here on the tiny build on CPU:

1. fp32 mode refused a component saved in bf16 (the full-size UMT5): both sides now load it
   upcast to fp32, exactly, and the pipeline records it; every other load keeps the dtype check.
2. every weight/config fault copied the whole converted/ folder (29 GB at full size): a fault now
   links everything and rewrites only the file it edits, never the original.
3. fast calibration's attention variant allowed one SDPA backend for the whole pipeline, so an
   input that backend has no kernel for (the Wan VAE's fp32 attention under cuDNN) failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.errors import ComponentLoadError


def _to_bf16(folder: Path) -> int:
    """Rewrite the folder's float32 tensors in bf16, as the full-size build saves UMT5; returns how many."""
    from safetensors.torch import load_file, save_file

    count = 0
    for path in sorted(folder.glob("*.safetensors")):
        state = load_file(str(path))
        count += sum(v.dtype == torch.float32 for v in state.values())
        save_file({k: v.to(torch.bfloat16) if v.dtype == torch.float32 else v for k, v in state.items()},
                  str(path), metadata={"format": "pt"})
    return count


def test_fp32_mode_upcasts_a_bf16_component_exactly_and_records_it(wan_copy):
    from safetensors.torch import load_file

    from workbench.parity.runner import load_native_fp32
    from workbench.runtime.manifest import read_manifest

    converted = wan_copy / "converted"
    tensors = _to_bf16(converted / "text_encoder")
    assert tensors > 0
    pipe = load_native_fp32(converted, torch.device("cpu"))
    assert pipe.upcast_on_load == [{"folder": str(converted / "text_encoder"), "from": "bfloat16", "to": "float32",
                                    "tensors": tensors}]
    saved = {}
    for path in sorted((converted / "text_encoder").glob("*.safetensors")):
        saved.update(load_file(str(path)))
    loaded = pipe.get_module("text_encoder").state_dict()
    key = max((k for k in saved if k in loaded), key=lambda k: saved[k].numel())
    assert loaded[key].dtype == torch.float32
    assert torch.equal(loaded[key], saved[key].float())  # the upcast changes no value
    # the other modules were saved fp32: nothing recorded for them
    assert read_manifest(converted).enabled_modules and len(pipe.upcast_on_load) == 1


def test_the_dtype_check_still_refuses_a_bf16_file_outside_fp32_mode(wan_copy):
    from workbench.api.generate import load_pipeline
    from workbench.runtime.loader import load_module
    from workbench.runtime.manifest import read_manifest

    converted = wan_copy / "converted"
    _to_bf16(converted / "text_encoder")
    spec = read_manifest(converted).modules["text_encoder"]
    # declared fp32, but not under the fp32 mode's upcast: refused, naming the dtypes
    with pytest.raises(ComponentLoadError, match="is bfloat16 in the file, float32 expected"):
        load_module(converted, spec, torch.device("cpu"), dtype=torch.float32)
    with pytest.raises(ComponentLoadError, match="wrong dtype"):
        load_pipeline(converted, device="cpu", mode="exact", progress=False)


def _real_files(folder: Path) -> list[Path]:
    """Files that are not links, without descending into linked folders."""
    import os

    out = []
    for where, _dirs, files in os.walk(folder):  # followlinks=False: a linked folder is not entered
        out += [Path(where) / f for f in files if not (Path(where) / f).is_symlink()]
    return sorted(out)


def test_a_planted_fault_rewrites_one_file_and_never_the_original(wan_dir, tmp_path):
    from workbench.parity.selfcheck import perturb_config, perturb_weight, scratch_converted
    from workbench.references import tree_sha256

    before = tree_sha256(wan_dir / "converted")
    case = tmp_path / "weight"
    converted = scratch_converted(wan_dir / "converted", case, "transformer")
    planted = perturb_weight(converted / "transformer", 1e-2)
    assert [p.relative_to(converted) for p in _real_files(converted)] == [Path(planted["file"])]
    assert all((converted / e.name).is_symlink() for e in (wan_dir / "converted").iterdir() if e.name != "transformer")
    assert tree_sha256(converted / "transformer") != tree_sha256(wan_dir / "converted" / "transformer")

    case = tmp_path / "config"
    converted = scratch_converted(wan_dir / "converted", case, "vae")
    planted = perturb_config(converted / "vae")
    assert [p.relative_to(converted) for p in _real_files(converted)] == [Path(planted["file"])]
    assert tree_sha256(wan_dir / "converted") == before  # neither fault wrote through a link


def test_fast_attention_variant_keeps_its_backend_and_falls_back_only_where_it_has_no_kernel():
    from workbench import registry
    from workbench.parity.calibration import attention_backend, variant_settings
    from workbench.references import ensure_reference

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 8, 16, generator=g) for _ in range(3))  # fp32, on the CPU: no cuDNN kernel
    sdpa = torch.nn.functional.scaled_dot_product_attention
    with attention_backend("math"):
        expected = sdpa(q, k, v)
    with pytest.raises(RuntimeError, match="No available kernel|No viable backend"):
        with attention_backend("cudnn"):  # one backend for everything: what fast calibration did
            sdpa(q, k, v)
    with attention_backend("cudnn", fallback=True):
        assert torch.equal(sdpa(q, k, v), expected)  # served by math, the input cuDNN cannot take
    with pytest.raises(RuntimeError, match="No available kernel|No viable backend"):
        with attention_backend("efficient", fallback=True):  # fp32 mode's backends are never widened
            sdpa(q, k, v)

    family = registry.get_family("wan_t2v")
    official = ensure_reference(family) / "official"
    cuda = {s.name: s for s in variant_settings(family, "fast", torch.device("cuda"), official)}
    assert cuda["attention"].backend == "cudnn" and cuda["attention"].fallback
    assert "(else efficient/math)" in cuda["attention"].describe()
    cpu = variant_settings(family, "fast", torch.device("cpu"), official)
    assert not any(s.fallback for s in cpu)  # CPU floors (and their cache keys) are unchanged
    assert not any(s.fallback for s in variant_settings(family, "fp32", torch.device("cuda"), official))


def test_selfcheck_keeps_its_progress_on_disk(tmp_path, capsys):
    """A full-size run takes many minutes: each finished fault is printed and the JSON so far is
    written (`"partial": true` until the end), so a run stopped midway keeps what it measured."""
    import json

    import workbench.parity.selfcheck as selfcheck
    from workbench.cli import main

    snapshots = []
    real = selfcheck.run_selfcheck

    def spy(family, **kwargs):
        outer = kwargs["on_progress"]

        def progress(partial):
            outer(partial)
            snapshots.append(json.loads((tmp_path / "r.json").read_text()))
        return real(family, **{**kwargs, "on_progress": progress})

    selfcheck.run_selfcheck, restore = spy, real
    try:
        main(["selfcheck", "wan_t2v", "--only", "code:cfg_scale_minus_one", "--json", str(tmp_path / "r.json")])
    finally:
        selfcheck.run_selfcheck = restore
    out = capsys.readouterr().out
    assert "setup done in" in out and "[1] code:cfg_scale_minus_one: detected, localised" in out
    assert [(s["partial"], len(s["faults"])) for s in snapshots] == [(True, 0), (True, 1)]
    final = json.loads((tmp_path / "r.json").read_text())
    assert "partial" not in final and final["rates"]["all"]["detected"]["count"] == 1
