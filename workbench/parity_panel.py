"""Notebook 04's interactive side: parity with progress, a panel to rerun it, and the views.

- `run_with_progress`: `workbench.parity.runner.run_parity` with tqdm.auto bars, one per
  side (native runs first, then the official pipeline), advanced at every checkpoint the
  side records: each stage's captures and the latents after every denoising step.
- `parity_panel`: widgets for the seed, steps, the family's key fields and the model
  directory, a Run button, the coloured verdict table and checkpoint / channel / frame
  selectors for the heatmaps and the side-by-side frames, and the media players.

The progress observer wraps `CaptureSet.record` for the duration of one run (the runner is
not changed): every checkpoint either side records passes through it.
"""

from __future__ import annotations

import html
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from workbench.errors import WorkbenchError

#: Request fields the panel offers beyond seed and steps, when the family uses them.
KEY_FIELDS = ("guidance_scale", "flow_shift", "guidance_scale_2", "boundary_ratio", "audio_end_in_s",
              "stg_scale", "modality_scale")


def key_fields(family_name: str, preset: str | None = None) -> dict[str, Any]:
    """The family's key request fields (beyond seed and steps) and their starting values:
    the resolved request's, else the converted scheduler's (flow_shift)."""
    from workbench import registry
    from workbench.parity.report import family_fields

    family = registry.get_family(family_name)
    params = family.sampling_params(preset)
    known = family_fields(family.name) or set()
    out: dict[str, Any] = {}
    for name in KEY_FIELDS:
        value = getattr(params, name, None)
        if name == "flow_shift" and value is None:
            from workbench.notebook_helpers import _pipeline

            value = _pipeline(family).scheduler.config.get("flow_shift")
        if name in known and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def expected_checkpoints(family_name: str, steps: int) -> int:
    """About how many checkpoints one side records: the stage captures plus the latents of
    every step (two streams for joint audio-video). For the progress bars' totals."""
    from workbench import registry
    from workbench.notebook_helpers import _pipeline

    family = registry.get_family(family_name)
    stages = sum(len(s.captures) for s in _pipeline(family).stages)
    return stages + steps * (2 if family.output_kind == "joint" else 1)


@contextmanager
def checkpoint_progress(total: int, names: tuple[str, ...] = ("native", "official")) -> Iterator[list]:
    """tqdm.auto bars, one per side in run order, each advanced by `CaptureSet.record`."""
    from unittest import mock

    from tqdm.auto import tqdm

    from workbench.parity.capture import CaptureSet

    original = CaptureSet.record
    bars: list = []
    sides: dict[int, Any] = {}

    def record(capture, name, tensor, kind, step=None, meta=None):
        original(capture, name, tensor, kind, step, meta)
        if id(capture) not in sides:
            if sides:
                previous = list(sides.values())[-1]
                previous.total = previous.n
                previous.refresh()
            label = names[len(sides)] if len(sides) < len(names) else f"side {len(sides) + 1}"
            sides[id(capture)] = tqdm(total=total, desc=label, unit="ckpt", leave=True)
            bars.append(sides[id(capture)])
        bar = sides[id(capture)]
        bar.set_postfix_str(name if step is None else f"{name} (step {step})", refresh=False)
        bar.update(1)

    with mock.patch.object(CaptureSet, "record", record):
        try:
            yield bars
        finally:
            for bar in bars:
                bar.total = bar.n
                bar.refresh()
                bar.close()


def run_with_progress(family_name: str, preset: str | None = None, mode: str = "exact", device: str = "cpu",
                      model_dir: str | None = None, request: Mapping[str, Any] | None = None):
    """`run_parity` with a progress bar per side, checkpoint by checkpoint."""
    from workbench import registry
    from workbench.parity.runner import run_parity

    steps = registry.get_family(family_name).sampling_params(preset, request).num_inference_steps
    with checkpoint_progress(expected_checkpoints(family_name, steps)):
        return run_parity(family_name, preset=preset, request=dict(request or {}), mode=mode,
                          model_dir=model_dir or None, device=device)


# ---- views -------------------------------------------------------------------------------
def verdict_table_html(verdict) -> str:
    """The verdict as a coloured HTML table (green pass, red fail, the first divergence bold)."""
    first = verdict.first_divergence
    rows = []
    for c in verdict.checkpoints:
        m = c.metrics
        colour = "#f4b4b4" if c is first else ("#eef8ee" if c.passed else "#fbe3e3")
        weight = "bold" if c is first else "normal"
        cells = [c.name, c.kind, "" if c.step is None else str(c.step),
                 "-" if m is None or m.max_abs_diff is None else f"{m.max_abs_diff:.3e}",
                 "-" if m is None or m.cosine is None else f"{m.cosine:.6f}",
                 "pass" if c.passed else "FAIL", c.reason]
        tds = "".join(f"<td style='padding:2px 8px'>{html.escape(x)}</td>" for x in cells)
        rows.append(f"<tr style='background:{colour};font-weight:{weight}'>{tds}</tr>")
    head = "".join(f"<th style='padding:2px 8px;text-align:left'>{h}</th>"
                   for h in ("checkpoint", "kind", "step", "max abs", "cosine", "result", "reason"))
    status = "PASS" if verdict.passed else "FAIL"
    banner = (f"<div style='padding:4px 8px;font-weight:bold;background:{'#cfeccf' if verdict.passed else '#f4c4c4'}'>"
              f"{status}: {sum(c.passed for c in verdict.checkpoints)} of {len(verdict.checkpoints)} checkpoints "
              f"within {html.escape(verdict.mode)}-mode tolerance</div>")
    return f"{banner}<table style='border-collapse:collapse;font-size:0.85em'><tr>{head}</tr>{''.join(rows)}</table>"


def players_html(parity) -> str:
    """Synced reference | native | diff videos and reference | native audio of a run."""
    from workbench.players import model_sampling_rate, parity_players_html

    return parity_players_html(parity.reference, parity.native, parity.verdict,
                               sampling_rate=model_sampling_rate(getattr(parity, "model_dir", None)))


def show_players(parity):
    """The players as a displayable HTML object (notebook 04, tagged nbval-ignore-output)."""
    from IPython.display import HTML

    return HTML(players_html(parity) or "<p>(no media checkpoints)</p>")


def latent_names(reference) -> list[str]:
    return [c.name for c in reference if c.kind == "latent"]


@dataclass
class Panel:
    """What `parity_panel` built (the widget and its parts, for tests and for reuse)."""

    widget: Any
    controls: dict[str, Any]
    run_button: Any
    verdict_html: Any
    selectors: dict[str, Any]
    heatmap_out: Any
    media_out: Any
    state: dict[str, Any]

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def run(self) -> None:
        self.run_button.click()


def parity_panel(family_name: str, preset: str | None = None, mode: str = "exact", device: str = "cpu",
                 model_dir: str | None = None, parity=None, seed: int | None = None,
                 steps: int | None = None) -> Panel:
    """Widgets for seed, steps, the family's key fields and the model directory; Run
    reruns parity with progress; the verdict table, the heatmaps (checkpoint, channel,
    frame) and the frames (frame) redraw from the selectors; the players follow the run.
    `parity` (a finished run) is shown at once without running again."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import Image, clear_output, display

    from workbench import registry
    from workbench.notebook_helpers import figure_png, snapshot_box
    from workbench.parity import plots
    from workbench.players import model_sampling_rate

    family = registry.get_family(family_name)
    params = parity.params if parity is not None else family.sampling_params(preset)
    style = {"description_width": "120px"}
    controls: dict[str, Any] = {
        "seed": widgets.IntText(value=params.seed if seed is None else seed, description="seed", style=style),
        "steps": widgets.IntSlider(value=params.num_inference_steps if steps is None else steps, min=1,
                                   max=max(4 * params.num_inference_steps, 8), description="steps", style=style,
                                   continuous_update=False),
    }
    for name, value in key_fields(family.name, preset).items():
        current = getattr(params, name, None)
        controls[name] = widgets.FloatText(value=float(current if current is not None else value),
                                           description=name, style=style)
    controls["model_dir"] = widgets.Text(value=str(model_dir or ""), description="model dir", style=style,
                                         placeholder="empty: the tiny build in the cache",
                                         layout=widgets.Layout(width="480px"))
    button = widgets.Button(description="Run parity", button_style="primary", icon="play")
    progress_out, verdict_html = widgets.Output(), widgets.HTML()
    checkpoint = widgets.Dropdown(description="checkpoint", style=style)
    channel = widgets.IntSlider(description="channel", min=0, max=0, style=style, continuous_update=False)
    frame = widgets.IntSlider(description="latent frame", min=0, max=0, style=style, continuous_update=False)
    media_frame = widgets.IntSlider(description="media frame", min=0, max=0, style=style, continuous_update=False)
    heatmap_out, media_out, players = widgets.Output(), widgets.Output(), widgets.HTML()
    state: dict[str, Any] = {"parity": parity, "error": None}
    selectors = {"checkpoint": checkpoint, "channel": channel, "frame": frame, "media_frame": media_frame}

    def draw_heatmap(_change=None):
        run = state["parity"]
        if run is None or not checkpoint.value:
            return
        with heatmap_out:
            clear_output(wait=True)
            try:
                fig = plots.plot_latent_heatmaps(run.reference, run.native, checkpoint.value,
                                                 channels=(channel.value,), frame=frame.value)
            except WorkbenchError as exc:
                print(f"not drawn: {exc}")
                return
            display(Image(data=figure_png(fig)))  # a PNG: the same with the inline and ipympl backends
            plt.close(fig)

    def on_checkpoint(_change=None):
        run = state["parity"]
        if run is None or not checkpoint.value:
            return
        ref = run.reference[checkpoint.value].tensor
        channels, frames = plots.latent_axes(ref)
        worst_c, worst_f = plots.worst_slice(ref, run.native[checkpoint.value].tensor) if (
            checkpoint.value in run.native and run.native[checkpoint.value].tensor.shape == ref.shape) else (0, 0)
        with channel.hold_trait_notifications(), frame.hold_trait_notifications():
            channel.max, frame.max = channels - 1, frames - 1
            channel.value, frame.value = worst_c, worst_f
        draw_heatmap()

    def draw_media(_change=None):
        run = state["parity"]
        if run is None:
            return
        with media_out:
            clear_output(wait=True)
            kind = family.output_kind
            try:
                if kind in ("frames", "joint"):
                    media_frame.max = max(plots.frame_count(run.reference) - 1, 0)
                    fig = plots.plot_frames(run.reference, run.native, frames=[media_frame.value])
                else:
                    fig = plots.plot_waveforms(run.reference, run.native,
                                               sampling_rate=model_sampling_rate(getattr(run, "model_dir", None)))
            except WorkbenchError as exc:
                print(f"not drawn: {exc}")
                return
            display(Image(data=figure_png(fig)))  # a PNG: the same with the inline and ipympl backends
            plt.close(fig)

    def show(run):
        state["parity"] = run
        verdict_html.value = verdict_table_html(run.verdict)
        names = latent_names(run.reference)
        first = run.verdict.first_divergence
        checkpoint.options = names
        preferred = first.name if first is not None and first.name in names else (
            "final_latents" if "final_latents" in names else (names[0] if names else None))
        if preferred is not None:
            checkpoint.value = preferred
        on_checkpoint()
        draw_media()
        players.value = players_html(run)

    def request() -> dict[str, Any]:
        values = {"seed": controls["seed"].value, "num_inference_steps": controls["steps"].value}
        values.update({k: w.value for k, w in controls.items() if k not in ("seed", "steps", "model_dir")})
        return values

    def on_run(_button=None):
        button.disabled = True
        state["error"] = None
        try:
            with progress_out:
                clear_output(wait=True)
                try:
                    run = run_with_progress(family.name, preset, mode, device, controls["model_dir"].value or None,
                                            request())
                except WorkbenchError as exc:
                    state["error"] = str(exc)
                    print(f"refused: {exc}")
                    return
            show(run)
        finally:
            button.disabled = False

    button.on_click(on_run)
    checkpoint.observe(lambda change: on_checkpoint(), names="value")
    channel.observe(draw_heatmap, names="value")
    frame.observe(draw_heatmap, names="value")
    media_frame.observe(draw_media, names="value")
    if parity is not None:
        show(parity)
    snapshot = None
    if parity is not None:
        fig = plots.plot_latent_diffs(parity.verdict)
        snapshot = figure_png(fig)
        plt.close(fig)
    box = snapshot_box([
        widgets.HTML("<b>Parity panel</b>: change the request, press Run; the selectors redraw from the last run."),
        widgets.HBox([widgets.VBox(list(controls.values())), widgets.VBox([button, progress_out])]),
        verdict_html,
        widgets.HBox([checkpoint, channel, frame]), heatmap_out,
        media_frame, media_out, players,
    ], snapshot)
    return Panel(box, controls, button, verdict_html, selectors, heatmap_out, media_out, state)
