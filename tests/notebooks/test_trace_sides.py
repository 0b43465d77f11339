"""Tracing both sides of a parity run (workbench.trace.sides) and the parity cells of 04."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")  # this test process only; notebook kernels keep the inline backend

import matplotlib.pyplot as plt
import pytest

from workbench import notebook_helpers as nb
from workbench.errors import ParityError, WorkbenchError
from workbench.parity.compare import compare_captures
from workbench.parity.runner import run_parity
from workbench.trace import sides
from workbench.trace.diff import trace_diff


def _keys(path):
    return [(r["module"], r["tensor"], r["step"], r["call"]) for r in map(json.loads, path.read_text().splitlines())]


def test_both_sides_line_up_record_for_record(tmp_path):
    pair = sides.trace_both_sides("wan_t2v", request={"num_inference_steps": 2}, out_dir=tmp_path)
    assert (pair.modules, pair.calls_per_step) == (["transformer"], 2)  # cond + uncond per step
    keys = _keys(pair.native)
    assert keys == _keys(pair.reference) and {k[2] for k in keys} == {0, 1}
    assert ("transformer", "output.0", 1, 1) in keys
    diff = trace_diff(pair.reference, pair.native, sides.threshold_for("cpu"))
    assert diff.first_divergence is None and not diff.only_in_b and sides.threshold_for("cpu") == 1e-6


def test_step_filter_layer_filter_and_no_cfg_still_line_up(tmp_path):
    pair = sides.trace_both_sides("wan_t2v", request={"num_inference_steps": 3, "guidance_scale": 1.0},
                                  out_dir=tmp_path, layers=r"blocks\.\d+$", steps=[1])
    assert pair.calls_per_step == 1  # no CFG: one transformer call per step
    keys = _keys(pair.native)
    assert keys == _keys(pair.reference)
    assert {(k[0], k[2]) for k in keys} == {("transformer.blocks.0", 1), ("transformer.blocks.1", 1)}


def test_an_injected_fault_is_named_first(tmp_path, capsys):
    pair = sides.trace_both_sides("wan_t2v", request={"num_inference_steps": 1}, out_dir=tmp_path)
    module = sides.pick_fault_module(pair)
    assert module.startswith("transformer.") and module == sides.pick_fault_module(pair)
    faulty = trace_diff(pair.reference, sides.trace_with_fault(pair, module, 0.05), 1e-6)
    first = faulty.first_divergence
    assert (first.module, first.step, first.call) == (module, 0, 0)
    assert first.rel_drift == pytest.approx(0.05, rel=1e-5)  # fp32 scaling
    nb.print_fault_check(module, 0.05, faulty)
    assert capsys.readouterr().out.endswith("found    : yes, the first divergent module is the faulty one\n")
    with pytest.raises(WorkbenchError, match="the trace diff named"):
        nb.print_fault_check("transformer.rope", 0.05, faulty)
    with pytest.raises(WorkbenchError, match="found no divergence"):
        nb.print_fault_check(module, 0.05, trace_diff(pair.reference, pair.native, 1e-6))


def test_unknown_modules_are_refused(tmp_path):
    with pytest.raises(WorkbenchError, match="native pipeline has no torch module 'nosuch'"):
        sides.trace_both_sides("wan_t2v", out_dir=tmp_path, modules=["transformer", "nosuch"])
    pair = sides.trace_both_sides("wan_t2v", request={"num_inference_steps": 1}, out_dir=tmp_path)
    with pytest.raises(WorkbenchError, match="no such submodule"):
        sides.trace_with_fault(pair, "transformer.nosuch")


def test_parity_cells_save_plot_and_fail_loudly(tmp_path, capsys):
    parity = run_parity("wan_t2v", request={"num_inference_steps": 2})
    assert len(nb.plot_parity_media(parity).axes) == 9 * 3 + 1  # every frame x reference | native | diff, colourbar
    paths = nb.save_parity(parity, tmp_path)
    assert [p.name for p in paths] == ["wan_t2v_parity_verdict.json", "wan_t2v_parity_report.html"]
    nb.require_pass(parity.verdict)
    assert capsys.readouterr().out.endswith("verdict: PASS (9 of 9 checkpoints within exact-mode tolerance)\n")

    native = parity.native
    native.record("final_latents", native["final_latents"].tensor + 1e-3, "latent")
    broken = compare_captures(parity.reference, native, mode="exact")
    broken.family = "wan_t2v"
    with pytest.raises(ParityError, match="first divergence at final_latents"):
        nb.require_pass(broken)
    plt.close("all")
