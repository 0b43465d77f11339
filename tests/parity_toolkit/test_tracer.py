"""Tracer: env configuration, records, filters, fresh files, hook lifetime."""

from __future__ import annotations

import json

import pytest
import torch
from tests.parity_toolkit.conftest import TinyTransformer, run_two_steps

from workbench.errors import WorkbenchError
from workbench.trace.tracer import DEFAULT_STATS, Tracer, named_tensors


def _trace(path, model=None, **kwargs) -> list[dict]:
    model = model or TinyTransformer()
    with Tracer(path, **kwargs) as tracer:
        tracer.attach(model, prefix="transformer")
        run_two_steps(model)
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_per_module_tensor_and_step(tmp_path):
    records = _trace(tmp_path / "t.jsonl")
    modules = ["transformer.blocks.0.linear", "transformer.blocks.0", "transformer.blocks.1.linear",
               "transformer.blocks.1", "transformer.blocks.2.linear", "transformer.blocks.2",
               "transformer.proj_out", "transformer"]
    assert [r["module"] for r in records] == modules * 2  # hooks fire as modules finish
    assert [r["step"] for r in records] == [0] * 8 + [1] * 8
    first = records[0]
    assert set(first) == {"module", "tensor", "step", "call", *DEFAULT_STATS}
    assert first["tensor"] == "output" and first["call"] == 0
    assert first["shape"] == [2, 5, 8] and first["dtype"] == "float32"


def test_stats_match_the_activation(tmp_path):
    model = TinyTransformer()
    seen = {}
    model.blocks[0].register_forward_hook(lambda m, a, out: seen.update(out=out.detach().double()))
    records = _trace(tmp_path / "t.jsonl", model, stats=("abs_mean", "sum", "min", "max", "mean", "std"))
    block0 = [r for r in records if r["module"] == "transformer.blocks.0"][-1]  # last call = last seen
    out = seen["out"]
    assert block0["abs_mean"] == pytest.approx(float(out.abs().mean()), rel=1e-12)
    assert block0["sum"] == pytest.approx(float(out.sum()), rel=1e-12)
    assert (block0["min"], block0["max"]) == (float(out.min()), float(out.max()))
    assert block0["std"] == pytest.approx(float(out.std(correction=0)), rel=1e-12)
    assert "shape" not in block0


def test_step_filter_and_layer_regex(tmp_path):
    records = _trace(tmp_path / "steps.jsonl", steps={1})
    assert {r["step"] for r in records} == {1} and len(records) == 8
    records = _trace(tmp_path / "layers.jsonl", layers=r"blocks\.\d+$")
    assert {r["module"] for r in records} == {f"transformer.blocks.{i}" for i in range(3)}


def test_each_run_writes_a_fresh_file(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"stale": true}\n' * 50)
    first = _trace(path)
    second = _trace(path)
    assert len(first) == len(second) == 16
    assert "stale" not in path.read_text()


def test_hooks_are_removed_on_exit_and_records_only_written_while_open(tmp_path):
    model = TinyTransformer()
    path = tmp_path / "t.jsonl"
    tracer = Tracer(path)
    tracer.attach(model)
    run_two_steps(model)  # not open yet: nothing to write to, nothing written
    with tracer:
        run_two_steps(model)
    assert all(not m._forward_hooks for m in model.modules())
    run_two_steps(model)
    assert len(path.read_text().splitlines()) == 16


def test_name_map_lines_up_differently_named_modules(tmp_path):
    class Renamed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            source = TinyTransformer()
            self.layers = source.blocks
            self.head = source.proj_out

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.head(x)

    name_map = {"head": "proj_out", **{f"layers.{i}{s}": f"blocks.{i}{s}" for i in range(3) for s in ("", ".linear")}}
    model = Renamed()
    with Tracer(tmp_path / "renamed.jsonl") as tracer:
        tracer.attach(model, prefix="transformer", name_map=name_map)
        run_two_steps(model)
    renamed = [json.loads(line) for line in (tmp_path / "renamed.jsonl").read_text().splitlines()]
    original = _trace(tmp_path / "original.jsonl")
    assert [(r["module"], r["abs_mean"]) for r in renamed] == [(r["module"], r["abs_mean"]) for r in original]


def test_repeated_calls_in_a_step_are_numbered(tmp_path):
    model = TinyTransformer()
    with Tracer(tmp_path / "t.jsonl", layers=r"^transformer$") as tracer:
        tracer.attach(model)
        run_two_steps(model, calls_per_step=2)  # e.g. conditional and unconditional passes
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [(r["step"], r["call"]) for r in records] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_named_tensors_walk_tuples_and_dicts():
    t = torch.zeros(1)
    names = [n for n, _ in named_tensors((t, {"sample": t, "aux": [t, None]}, "text"))]
    assert names == ["output.0", "output.1.sample", "output.1.aux.0"]


def test_from_env(tmp_path):
    assert Tracer.from_env({}) is None
    tracer = Tracer.from_env({"WORKBENCH_TRACE_OUTPUT": str(tmp_path / "t.jsonl"), "WORKBENCH_TRACE_LAYERS": "blocks",
                              "WORKBENCH_TRACE_STATS": "abs_mean, std", "WORKBENCH_TRACE_STEPS": "0,3"})
    assert tracer.stats == ("abs_mean", "std") and tracer.steps == {0, 3} and tracer.layers.pattern == "blocks"
    defaults = Tracer.from_env({"WORKBENCH_TRACE_OUTPUT": "x.jsonl", "WORKBENCH_TRACE_STEPS": ""})
    assert defaults.stats == DEFAULT_STATS and defaults.steps is None and defaults.layers is None
    with pytest.raises(WorkbenchError, match="WORKBENCH_TRACE_STATS: unknown stat"):
        Tracer.from_env({"WORKBENCH_TRACE_OUTPUT": "x", "WORKBENCH_TRACE_STATS": "median"})
    with pytest.raises(WorkbenchError, match="WORKBENCH_TRACE_STEPS"):
        Tracer.from_env({"WORKBENCH_TRACE_OUTPUT": "x", "WORKBENCH_TRACE_STEPS": "one"})
    with pytest.raises(WorkbenchError, match="WORKBENCH_TRACE_LAYERS: invalid regex"):
        Tracer.from_env({"WORKBENCH_TRACE_OUTPUT": "x", "WORKBENCH_TRACE_LAYERS": "blocks("})
