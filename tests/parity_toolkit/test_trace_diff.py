"""trace_diff finds the first divergent module; the CLI maps results to exit codes 0/1/2."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from tests.parity_toolkit.conftest import TinyTransformer, run_two_steps
from matplotlib.figure import Figure

from workbench.cli import main
from workbench.errors import ParityError
from workbench.parity.plots import plot_layer_drift
from workbench.trace.diff import trace_diff
from workbench.trace.tracer import Tracer


def _trace(model: torch.nn.Module, path: Path, **kwargs) -> Path:
    with Tracer(path, **kwargs) as tracer:
        tracer.attach(model, prefix="transformer")
        run_two_steps(model)
    return path


#: Exact-mode traces (CPU, fp32, same op order) agree bitwise, so any drift is a fault.
EXACT_THRESHOLD = 1e-6


def _faulty_copy(model: torch.nn.Module, delta: float) -> torch.nn.Module:
    faulty = copy.deepcopy(model)
    with torch.no_grad():
        faulty.blocks[1].linear.weight += delta
    return faulty


@pytest.fixture
def traces(tmp_path) -> tuple[Path, Path, Path]:
    """(reference trace, identical rerun, trace of a copy with 1e-2 added to a block-1 weight)."""
    model = TinyTransformer()
    return (_trace(model, tmp_path / "ref.jsonl"), _trace(model, tmp_path / "again.jsonl"),
            _trace(_faulty_copy(model, 1e-2), tmp_path / "faulty.jsonl"))


def test_identical_traces_do_not_diverge(traces):
    result = trace_diff(traces[0], traces[1])
    assert not result.divergent and result.first_divergence is None
    assert all(r.rel_drift == 0.0 for r in result.records) and len(result.records) == 16
    assert "first divergence: none" in result.summary()


def test_fault_in_block_one_is_found_at_block_one(traces):
    result = trace_diff(traces[0], traces[2], rel_threshold=EXACT_THRESHOLD)
    first = result.first_divergence
    assert (first.module, first.step) == ("transformer.blocks.1.linear", 0)
    assert first.rel_drift > EXACT_THRESHOLD and "rel drift" in first.reason
    block0_step0 = [r for r in result.records if r.module.startswith("transformer.blocks.0") and r.step == 0]
    assert len(block0_step0) == 2 and all(r.rel_drift == 0.0 for r in block0_step0)
    worst = result.worst_modules(3)
    assert len(worst) == 3 and worst[0].divergent > 0
    assert [w.max_rel_drift for w in worst] == sorted((w.max_rel_drift for w in worst), reverse=True)
    assert isinstance(plot_layer_drift(result), Figure)


def test_default_threshold_finds_a_fault_that_moves_the_abs_mean(tmp_path, traces):
    faulty = _trace(_faulty_copy(TinyTransformer(), 1e-1), tmp_path / "faulty.jsonl")
    first = trace_diff(traces[0], faulty).first_divergence
    assert (first.module, first.step) == ("transformer.blocks.1.linear", 0) and first.rel_drift > 0.005


def test_threshold_decides(traces):
    assert not trace_diff(traces[0], traces[2], rel_threshold=10.0).divergent
    with pytest.raises(ParityError, match="rel-threshold"):
        trace_diff(traces[0], traces[2], rel_threshold=-1)


def test_missing_records_and_shape_mismatch_are_reported(tmp_path, traces):
    partial = _trace(TinyTransformer(), tmp_path / "partial.jsonl", steps={0})
    result = trace_diff(traces[0], partial)
    assert result.divergent and len(result.missing_in_b) == 8
    assert result.first_divergence.step == 1 and result.first_divergence.reason == "missing in B"
    reverse = trace_diff(partial, traces[0])
    assert reverse.first_divergence is None and reverse.divergent and len(reverse.only_in_b) == 8
    assert "missing in A: 8 records" in reverse.summary()

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"module": "m", "tensor": "output", "step": 0, "abs_mean": 1.0, "shape": [2, 3]}) + "\n")
    b.write_text(json.dumps({"module": "m", "tensor": "output", "step": 0, "abs_mean": 1.0, "shape": [3, 2]}) + "\n")
    assert trace_diff(a, b).first_divergence.reason == "shape mismatch: A [2, 3] vs B [3, 2]"


def test_bad_trace_files_raise_parity_errors_naming_the_line(tmp_path):
    with pytest.raises(ParityError, match="does not exist"):
        trace_diff(tmp_path / "none.jsonl", tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"module": "m", "tensor": "output", "abs_mean": 1.0}\n{oops\n')
    with pytest.raises(ParityError, match=r"bad.jsonl:2: not a JSON record"):
        trace_diff(bad, bad)
    bad.write_text('{"module": "m", "tensor": "output", "max": 1.0}\n')
    with pytest.raises(ParityError, match=r"bad.jsonl:1: record has no 'abs_mean'"):
        trace_diff(bad, bad)


def test_cli_exit_codes(traces, tmp_path, capsys):
    ref, again, faulty = (str(p) for p in traces)
    assert main(["trace-diff", ref, again]) == 0
    assert main(["trace-diff", ref, faulty, "--rel-threshold", str(EXACT_THRESHOLD)]) == 1
    out = capsys.readouterr().out
    assert "first divergence: transformer.blocks.1.linear output step=0" in out and "max_rel_drift" in out
    assert main(["trace-diff", ref, faulty, "--rel-threshold", "10"]) == 0
    assert main(["trace-diff", ref, str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl does not exist" in capsys.readouterr().err
    (tmp_path / "invalid.jsonl").write_text("not json\n")
    assert main(["trace-diff", str(tmp_path / "invalid.jsonl"), ref]) == 2
