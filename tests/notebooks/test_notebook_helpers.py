"""The functions behind the notebook cells, on the default family's tiny build (CPU)."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # this test process only; notebook kernels keep the inline backend

import matplotlib.pyplot as plt
import pytest
import torch

from workbench import notebook_helpers as nb
from workbench import registry
from workbench.api.presets import InferencePreset, PresetTable
from workbench.media_plots import frame_indices, plot_media, plot_stage_timings, plot_sweep

T2V_ORDER = ["InputValidationStage", "TextEncodingStage", "ConditioningStage", "TimestepPreparationStage",
             "LatentPreparationStage", "DenoisingStage", "DecodingStage"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_parameters_print_aligned_and_requests_keep_preset_values(capsys):
    nb.print_parameters(family="wan_t2v", steps=None)
    assert capsys.readouterr().out == "family = 'wan_t2v'\nsteps  = None\n"
    assert nb.request_from(seed=2, steps=None, guidance=1.5) == {"seed": 2, "guidance_scale": 1.5}
    assert nb.num(0.000123456) == "1.235e-04"


def test_wiring_reads_the_converted_directory_like_the_runtime(capsys):
    w = nb.inspect_wiring("wan_t2v")
    roles = {m.name: (m.role, m.status) for m in w.modules}
    assert roles == {"scheduler": ("required", "loaded"), "text_encoder": ("required", "loaded"),
                     "tokenizer": ("required", "loaded"), "transformer": ("required", "loaded"),
                     "transformer_2": ("optional", "disabled"), "vae": ("required", "loaded")}
    assert (w.official_class, w.manifest_class, w.resolved_class, w.detected_family) == (
        "WanPipeline", "NativeWanPipeline", "NativeWanPipeline", "wan_t2v")
    assert [s.name for s in w.stages] == T2V_ORDER
    assert w.stages[-1].captures == ["frames"] and "num_frames" in w.stages[0].checks_in
    nb.print_stage_chain(w)
    nb.print_class_resolution(w)
    out = capsys.readouterr().out
    assert out.startswith(" -> ".join(T2V_ORDER)) and "WARNING" not in out
    nb.print_registry_entry("wan_t2v")
    assert "height              = 480" in capsys.readouterr().out


def test_provenance_names_the_layer_of_every_field():
    rows = {name: (value, where) for name, value, where in nb.provenance("wan_t2v", None, {"seed": 7})}
    assert rows["seed"] == (7, "request")
    assert rows["height"] == (32, "preset tiny-ci@v1")
    assert rows["flow_shift"] == (None, "class default")
    full = {n: w for n, _, w in nb.provenance("wan_t2v", "wan2.1-1.3b-480p")}
    assert full["height"] == "preset wan2.1-1.3b-480p@v1"
    assert set(rows) == {f for f in nb.SamplingParam.field_names()}


def test_preset_lint_catches_invalid_values_and_unknown_stages(monkeypatch):
    assert [(r.preset, r.problems) for r in nb.lint_presets("wan_t2v")] == [
        ("tiny-ci@v1", []), ("wan2.1-1.3b-480p@v1", [])]
    family = registry.get_family("wan_t2v")
    good = family.preset()
    bad = InferencePreset("wan_t2v", "bad", 1, good.workload_type, "height not a multiple of 16",
                          defaults={**good.defaults, "height": 30}, stage_schemas={"NoSuchStage": {"x": int}})
    table = PresetTable()
    table.add_all([good, bad])
    monkeypatch.setattr(registry, "PRESETS", table)
    problems = {r.preset: r.problems for r in nb.lint_presets("wan_t2v")}
    assert problems["tiny-ci@v1"] == []
    assert problems["bad@v1"] == ["height: expected a positive multiple of 16, got 30",
                                  "stage_schemas name stages not in the chain: ['NoSuchStage']"]


def test_lint_leaves_required_inputs_a_preset_does_not_ship_to_the_request(capsys):
    results = {r.preset: r for r in nb.lint_presets("wan_i2v")}
    full = results["wan2.1-i2v-14b-480p@v1"]
    assert (full.problems, full.left_to_request) == ([], ["image"])
    nb.print_lint([full])
    assert capsys.readouterr().out == "wan2.1-i2v-14b-480p@v1       ok (left to the request: image)\n"


def test_refusals_and_overrides_are_shown_with_their_messages(capsys):
    nb.show_refusals("wan_t2v")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(": refused: " in line for line in lines)
    assert "did you mean num_inference_steps" in lines[0]
    assert nb.example_overrides("wan_t2v") == ["DenoisingStage.cfg=batched"]
    nb.print_overrides("wan_t2v", None)
    assert capsys.readouterr().out == "requested: ['DenoisingStage.cfg=batched']\nDenoisingStage: {'cfg': 'batched'}\n"
    nb.print_overrides("wan_t2v", None, [])
    assert capsys.readouterr().out == "requested: []\nno overrides\n"


def test_sample_generation_writes_media_and_prints_fixed_digits(tmp_path, capsys):
    sample = nb.generate_sample("wan_t2v", None, "cpu", {"seed": 0, "num_inference_steps": 2})
    assert list(sample.media) == ["frames"] and sample.media["frames"].shape == (9, 32, 32, 3)
    assert (sample.fps, sample.sampling_rate, sample.device) == (8, None, "cpu")
    paths = nb.write_sample(sample, tmp_path / "out", stem="wan")
    assert [p.name for p in paths] == ["wan.mp4"] and paths[0].stat().st_size > 0
    nb.print_sample(sample)
    out = capsys.readouterr().out
    assert "frames      : shape (9, 32, 32, 3) float32 finite=True  min " in out and f"wrote       : {paths[0].as_posix()}" in out
    assert type(nb.show_sample(sample)[0]).__name__ == "Video"
    nb.print_performance(sample)
    assert "peak memory : n/a (CPU)" in capsys.readouterr().out
    strip = nb.plot_sample(sample)
    assert [ax.get_title() for ax in strip.axes] == [f"frame {i}" for i in range(9)]  # every frame
    assert strip.get_size_inches().tolist() == pytest.approx([9 * 1.3, 1.3 + 0.25])  # sized to the thumbnails
    assert len(nb.plot_stage_timings(sample).axes) == 1


def test_sweep_moves_away_from_the_preset_only_off_the_preset_cell(capsys):
    assert nb.sweep_grid("wan_t2v") == ([1, 3, 6], [1.0, 5.0])
    sweep = nb.run_sweep("wan_t2v", steps=[1, 3], guidance=[5.0])
    deltas = [row[0].stats["delta"] for row in sweep.cells]
    assert deltas[0] > 0 and deltas[1] == 0.0  # steps 3 / guidance 5 is the preset itself
    nb.print_sweep(sweep)
    assert capsys.readouterr().out.splitlines()[2].endswith("0.000e+00")
    assert len(nb.plot_sweep(sweep).axes) == 2


def test_tuning_sliders_start_at_the_request_and_include_shift_when_the_scheduler_has_one(capsys):
    specs = nb.slider_specs("wan_t2v", request={"seed": 5, "num_inference_steps": 2})
    assert specs == {"steps": (1, 8, 1, 2), "guidance": (0.0, 10.0, 0.5, 5.0), "shift": (0.5, 8.0, 0.5, 3.0),
                     "seed": (0, 1000, 1, 5)}
    widget = nb.tuning_widget("wan_t2v", request={"num_inference_steps": 1})
    bundle = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live widget in JupyterLab...
    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"  # ...and its static snapshot
    *sliders, _preview = widget.children
    assert [c.description for c in sliders] == ["steps", "guidance", "shift", "seed"]
    # Outside a kernel the Output widget passes its display through to stdout.
    first = [line for line in capsys.readouterr().out.splitlines() if line.startswith("frames")]
    assert len(first) == 1  # the first preview ran once, at construction
    sliders[3].value = 7  # another seed: the preview regenerates
    again = [line for line in capsys.readouterr().out.splitlines() if line.startswith("frames")]
    assert len(again) == 1 and again != first


def test_media_figures_cover_frames_waveforms_and_joint_media():
    assert frame_indices(9) == list(range(9)) and frame_indices(9, 5) == [0, 2, 4, 6, 8]
    frames, wave = torch.rand(13, 16, 16, 3), torch.randn(2, 800)
    strip = plot_media({"frames": frames})
    assert len(strip.axes) == 13 and strip.get_size_inches().tolist() == pytest.approx([9 * 1.3, 2 * 1.55])  # wraps
    audio = plot_media({"waveform": wave}, sampling_rate=16000)
    assert len(audio.axes) == 1 and audio.axes[0].get_xlabel() == "time (s)"
    assert audio.axes[0].get_legend().get_bbox_to_anchor().x0 > audio.axes[0].get_window_extent().x1 - 1
    joint = plot_media({"frames": frames, "waveform": wave}, sampling_rate=16000)
    assert len(joint.axes) == 14 and joint.get_size_inches().tolist() == pytest.approx([9 * 1.3, 2 * 1.55 + 2.2])
    assert len(plot_stage_timings({"A": 0.1, "B": 0.2}).axes) == 1
    assert len(plot_sweep([[{"waveform": wave}, {"frames": frames}]], ["r"], ["a", "b"], 16000).axes) == 2


def test_sweep_and_sliders_keep_to_step_counts_the_pipeline_accepts():
    assert nb.accepts("wan_t2v", None, {"num_inference_steps": 1})
    assert not nb.accepts("ltx2", None, {"num_inference_steps": 1})  # its schedule needs two steps
    assert nb.sweep_grid("ltx2")[0] == [3, 6]
    assert nb.slider_specs("ltx2")["steps"][:2] == (2, 12)


def test_performance_measurement_stores_every_run_of_both_sides(tmp_path, capsys):
    from workbench.perf.store import PerfStore

    assert nb.perf_store_path(None, "out") == Path("out") / "perf.sqlite"
    assert nb.perf_store_path("mine.sqlite", "out") == Path("mine.sqlite")
    store_path = nb.perf_store_path(None, tmp_path / "artifacts")
    m = nb.measure_performance("wan_t2v", None, "cpu", nb.request_from(seed=0, steps=2), 2, store_path)
    assert f"stored 4 records in {store_path.as_posix()} (session {m.session})" in capsys.readouterr().out
    with PerfStore(store_path) as store:
        for side in ("native", "reference"):
            stored = store.records(m.records[side][0].cohort)
            assert stored == m.records[side] and all(r.run_source == "notebook" for r in stored)
    assert m.pair.steps == 2 and m.records["native"][0].throughput_fps is not None  # frames: 9 per run
