"""What the notebooks call. A notebook cell is one or two calls into this module, so the
logic behind every cell is reachable from pytest (DESIGN section 2).

Everything printed here is meant for nbval to compare: numbers at fixed significant
digits, no addresses, no absolute paths, no timings. Timings and device-dependent numbers
are printed by `print_performance` and `measure_performance` (and notebook 06's history
views in workbench.perf.history) only, in cells tagged `nbval-ignore-output`.
Functions take the family by name and branch on `family.output_kind`, so every notebook
works for every registered family.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from workbench.api.generate import Generation
from workbench.api.params import SamplingParam
from workbench.errors import WorkbenchError
from workbench.runtime.hooks import PipelineHooks

MEDIA_KINDS = ("frames", "waveform")


def num(x: float) -> str:
    """The one number format nbval compares: 4 significant digits."""
    return f"{x:.3e}"


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


#: Library warnings the notebooks are known to trigger, each harmless here (message regex, category, why).
KNOWN_WARNINGS = (
    (r"Should have \w+[<>]=\w+ but got", UserWarning,
     "torchsde's Brownian interval when the solver queries a step boundary a float ulp outside it (Stable Audio)"),
    (r".*torch\.nn\.utils\.weight_norm.* is deprecated", FutureWarning,
     "diffusers' Oobleck VAE / vocoders still call the old weight_norm"),
    (r".*weight_norm.*deprecated", UserWarning, "the same deprecation, as some torch builds raise it"),
)
HEADLESS_ENV = "WORKBENCH_HEADLESS"  # set by `workbench run` / bless / the test kernels: no live frontend


def filter_known_warnings() -> None:
    """Silence the library warnings in KNOWN_WARNINGS (they showed as pink stderr blocks)."""
    import warnings

    for message, category, _why in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def figure_backend() -> str:
    """'widget' (ipympl: zoomable figures) in a live JupyterLab when ipympl is installed,
    else 'inline' (static PNGs: headless runs, nbval, the HTML renderings)."""
    import importlib.util
    import os

    if os.environ.get(HEADLESS_ENV) or importlib.util.find_spec("ipympl") is None:
        return "inline"
    return "widget"


def setup_notebook() -> str:
    """First call of every notebook: known warnings filtered, the figure backend chosen
    (`figure_backend`). Prints nothing (nbval compares the cell)."""
    filter_known_warnings()
    backend = figure_backend()
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return backend
    shell = get_ipython()
    if shell is not None and backend == "widget":
        shell.run_line_magic("matplotlib", "widget")
    return backend


def print_parameters(**values: Any) -> None:
    """The notebook's parameters as it runs them (after papermill's injection)."""
    width = max(len(k) for k in values)
    for key, value in values.items():
        print(f"{key:<{width}} = {value!r}")


def request_from(seed: int | None = None, steps: int | None = None, guidance: float | None = None,
                 shift: float | None = None) -> dict[str, Any]:
    """Notebook parameter names -> SamplingParam fields; None keeps the preset's value."""
    names = {"seed": seed, "num_inference_steps": steps, "guidance_scale": guidance, "flow_shift": shift}
    return {k: v for k, v in names.items() if v is not None}


def _family(name: str):
    from workbench import registry

    return registry.get_family(name)


def _pipeline(family, device: str = "cpu"):
    from workbench.api.generate import load_pipeline
    from workbench.families.offline import quiet_hf
    from workbench.parity.runner import resolve_model_dir

    quiet_hf()
    return load_pipeline(resolve_model_dir(family, None) / "converted", device=device, progress=False)


# ---- 01 pipeline wiring ------------------------------------------------------------------
@dataclass
class ModuleRow:
    name: str
    spec: str       # "library.Class" from the manifest, or "[null, null]"
    role: str       # required | optional | not used
    status: str     # loaded | on disk | missing | disabled


@dataclass
class StageRow:
    name: str
    checks_in: list[str]
    checks_out: list[str]
    captures: list[str]


@dataclass
class Wiring:
    family: str
    official_class: str
    manifest_class: str
    resolved_class: str
    detected_family: str
    modules: list[ModuleRow]
    metadata: dict[str, Any]
    stages: list[StageRow]


def inspect_wiring(family_name: str) -> Wiring:
    """Read the converted directory of the family's tiny build the way the runtime does."""
    from workbench import registry
    from workbench.runtime.batch import ForwardBatch

    family = _family(family_name)
    pipe = _pipeline(family)
    manifest = pipe.manifest
    required = set(pipe.required_modules)
    optional = set(pipe._optional_config_modules)
    rows = []
    for name in sorted(set(manifest.modules) | required):
        spec = manifest.modules.get(name)
        role = "required" if name in required else "optional" if name in optional else "not used"
        if spec is None:
            rows.append(ModuleRow(name, "-", role, "missing"))
            continue
        text = "[null, null]" if spec.disabled else f"{spec.library}.{spec.class_name}"
        status = "disabled" if spec.disabled else "loaded" if name in pipe.modules else "on disk"
        rows.append(ModuleRow(name, text, role, status))
    empty = ForwardBatch()
    stages = [StageRow(s.name, sorted(s.input_checks(empty)), sorted(s.output_checks(empty)),
                       [ckpt for ckpt, _ in s.captures.values()]) for s in pipe.stages]
    return Wiring(
        family=family.name,
        official_class=manifest.raw.get("_official_class_name", "-"),
        manifest_class=manifest.class_name,
        resolved_class=registry.resolve_pipeline_class(manifest).__qualname__,
        detected_family=registry.family_for_manifest(manifest, pipe.model_dir).name,
        modules=rows,
        metadata=dict(manifest.metadata),
        stages=stages,
    )


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_modules(w: Wiring) -> None:
    print(_table([("module", "manifest [library, class]", "role", "status")]
                 + [(m.name, m.spec, m.role, m.status) for m in w.modules]))
    if w.metadata:
        print("metadata (non-module keys):", ", ".join(f"{k}={_short(v, 30)}" for k, v in w.metadata.items()))


def print_class_resolution(w: Wiring) -> None:
    print(f"official _class_name       : {w.official_class}")
    print(f"converted _class_name      : {w.manifest_class}")
    print(f"registry resolves (exact)  : {w.resolved_class}")
    print(f"detector picks family      : {w.detected_family}")
    if w.detected_family != w.family:
        print(f"WARNING: the detectors pick {w.detected_family!r}, not {w.family!r}")


def print_stage_chain(w: Wiring) -> None:
    print(" -> ".join(s.name for s in w.stages))
    for i, s in enumerate(w.stages, 1):
        print(f"{i}. {s.name}")
        print(f"     checks in : {', '.join(s.checks_in) or '-'}")
        print(f"     checks out: {', '.join(s.checks_out) or '-'}")
        print(f"     captures  : {', '.join(s.captures) or '-'}")


def print_registry_entry(family_name: str) -> None:
    """The family's registration and its official defaults with the source of each."""
    from workbench import registry

    f = _family(family_name)
    print(f"family           : {f.name}  ({f.description})")
    print(f"workload         : {f.workload.name}  output kind: {f.output_kind}")
    print(f"pipeline class   : {f.pipeline_class.__module__}.{f.pipeline_class.__qualname__}")
    print(f"official         : {f.official_pipeline}  (built by {f.reference_module})")
    print(f"presets          : {', '.join(f'{p.name}@v{p.version}' for p in registry.PRESETS.for_family(f.name))}"
          f"  (default {f.default_preset}; goldens {', '.join(f.golden_presets)})")
    print(f"detectors        : {len(f.detectors)}")
    for d in f.detectors:
        print(f"  class names {list(d.class_names)}  path substrings {list(d.path_substrings)}"
              f"  metadata keys {sorted(d.metadata)}")
    print("official defaults:")
    width = max(len(k) for k in f.defaults)
    for key, value in f.defaults.items():
        print(f"  {key:<{width}} = {_short(value.value, 36):<36}  # {value.source}")


# ---- generation --------------------------------------------------------------------------
class MediaHooks(PipelineHooks):
    """Keeps the decoded media (the checkpoints of kind frames/waveform) of one run.

    Uses the capture contract's names, so joint audio-video families need no special case.
    """

    def __init__(self) -> None:
        self.media: dict[str, torch.Tensor] = {}

    def on_stage_end(self, stage, batch):
        for field_name, (checkpoint, kind) in stage.captures.items():
            value = getattr(batch, field_name) if hasattr(batch, field_name) else batch.extra.get(field_name)
            if kind in MEDIA_KINDS and isinstance(value, torch.Tensor):
                self.media[checkpoint] = value.detach().cpu()


@dataclass
class Sample:
    """One generation and its first sample's media, by capture name."""

    family: str
    generation: Generation
    media: dict[str, torch.Tensor]
    device: str
    paths: list[Path] = field(default_factory=list)
    previews: dict[Path, Path] = field(default_factory=dict)  # written file -> its browser-playable preview

    @property
    def fps(self) -> int | None:
        m = self.generation.media
        return getattr(getattr(m, "video", m), "fps", None)

    @property
    def sampling_rate(self) -> int | None:
        m = self.generation.media
        return getattr(getattr(m, "audio", m), "sampling_rate", None)


def generate_sample(family_name: str, preset: str | None = None, device: str = "cpu",
                    request: Mapping[str, Any] | None = None) -> Sample:
    from workbench.api.generate import generate
    from workbench.runtime.device import resolve_device

    hooks = MediaHooks()
    gen = generate(family_name, preset=preset, request=request, device=device, hooks=hooks, progress=False)
    if not hooks.media:
        raise WorkbenchError(f"family {family_name}: no stage captured media of kind {' or '.join(MEDIA_KINDS)}")
    return Sample(family_name, gen, {k: v[0] for k, v in hooks.media.items()}, str(resolve_device(device)))


def write_sample(sample: Sample, out_dir: str | Path, stem: str = "sample") -> list[Path]:
    """The sample as an mp4 and/or a wav under `out_dir` (relative to the working directory).

    A wav at a rate browsers refuse (the tiny Stable Audio VAE's 16 Hz) also gets a
    `<stem>.preview.wav` resampled for listening; the players use it."""
    from workbench.media import preview_rate, write_audio, write_preview_audio, write_video

    out_dir = Path(out_dir)
    if "frames" in sample.media:
        sample.paths.append(write_video(sample.media["frames"], out_dir / f"{stem}.mp4", sample.fps))
    if "waveform" in sample.media:
        wav = write_audio(sample.media["waveform"], out_dir / f"{stem}.wav", sample.sampling_rate)
        sample.paths.append(wav)
        if preview_rate(sample.sampling_rate) != sample.sampling_rate:
            sample.previews[wav] = write_preview_audio(sample.media["waveform"], out_dir / f"{stem}.preview.wav",
                                                       sample.sampling_rate)
    return sample.paths


def tensor_stats(t: torch.Tensor) -> dict[str, Any]:
    x = t.detach().float()
    finite = bool(torch.isfinite(x).all())
    return {"shape": tuple(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "finite": finite,
            "min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()), "std": float(x.std())}


def print_sample(sample: Sample) -> None:
    """Device, media contract and output statistics (fixed digits: nbval compares them)."""
    from workbench.api.workload import media_dict

    print(f"device      : {sample.device}")
    print(f"media       : {media_dict(sample.generation.media)}")
    for name, tensor in sample.media.items():
        s = tensor_stats(tensor)
        print(f"{name:<12}: shape {s['shape']} {s['dtype']} finite={s['finite']}  min {num(s['min'])}  "
              f"max {num(s['max'])}  mean {num(s['mean'])}  std {num(s['std'])}")
        if not s["finite"]:
            raise WorkbenchError(f"{sample.family}: {name} has NaN or Inf values")
    for path in sample.paths:
        print(f"wrote       : {path.as_posix()}")
        if path in sample.previews:
            print(f"preview     : {sample.previews[path].as_posix()} (resampled for listening)")


def print_performance(sample: Sample) -> None:
    g = sample.generation
    print(f"wall time   : {g.wall_s:.3f} s on {sample.device}")
    for name, seconds in g.stage_timings.items():
        print(f"  {name:<26} {seconds * 1e3:9.1f} ms")
    peak = "n/a (CPU)" if g.peak_memory_mb is None else f"{g.peak_memory_mb:.1f} MiB"
    print(f"peak memory : {peak}")


def show_sample(sample: Sample):
    """Players for the written files (embedded, so the executed notebook carries them)."""
    from IPython.display import Audio, Video

    players = []
    for path in sample.paths:
        if path.suffix == ".mp4":
            players.append(Video(str(path), embed=True, width=256, html_attributes="controls loop"))
        elif path.suffix == ".wav":
            players.append(Audio(filename=str(sample.previews.get(path, path))))
    return players


def plot_sample(sample: Sample, title: str = ""):
    from workbench.media_plots import plot_media

    return plot_media(sample.media, sampling_rate=sample.sampling_rate, title=title)


def plot_stage_timings(sample: Sample):
    from workbench.media_plots import plot_stage_timings as draw

    return draw(sample.generation.stage_timings, title=f"time per stage on {sample.device}")


# ---- 02 preset tuning --------------------------------------------------------------------
def print_presets(family_name: str) -> None:
    from workbench import registry

    f = _family(family_name)
    for p in registry.PRESETS.for_family(f.name):
        mark = "  (default)" if p.name == f.default_preset else ""
        print(f"{p.name}@v{p.version}  {p.workload_type.name}{mark}: {p.description}")
        for key, value in p.defaults.items():
            print(f"    {key:<20} = {_short(value, 50)}")
        for stage, schema in p.stage_schemas.items():
            print(f"    override {stage}: " + ", ".join(f"{k} in {_short(v, 40)}" for k, v in schema.items()))


def provenance(family_name: str, preset: str | None = None,
               request: Mapping[str, Any] | None = None) -> list[tuple[str, Any, str]]:
    """(field, value, where it came from) for every SamplingParam field.

    Precedence: class default < official default < preset < request.
    """
    f = _family(family_name)
    p = f.preset(preset)
    params = f.sampling_params(preset, request)
    request = dict(request or {})
    rows = []
    for fld in fields(SamplingParam):
        name = fld.name
        if name in request:
            where = "request"
        elif name in p.defaults:
            where = f"preset {p.name}@v{p.version}"
        elif name in f.defaults:
            where = f"official: {f.defaults[name].source}"
        else:
            where = "class default"
        rows.append((name, getattr(params, name), where))
    return rows


def print_provenance(family_name: str, preset: str | None = None, request: Mapping[str, Any] | None = None) -> None:
    rows = provenance(family_name, preset, request)
    width = max(len(r[0]) for r in rows)
    for name, value, where in rows:
        print(f"{name:<{width}} = {_short(value, 36):<36}  <- {where}")


@dataclass
class LintResult:
    preset: str
    problems: list[str]
    left_to_request: list[str] = field(default_factory=list)  # required inputs a preset need not ship


def lint_presets(family_name: str) -> list[LintResult]:
    """Beyond registration (declared keys): each preset's resolved request passes the
    pipeline's field rules, and its stage schemas name stages of the chain. A required
    field that is unset and not in the preset (an I2V image) is left to the request.
    Cross-checks against the loaded model are not run: the tiny build would refuse a
    full-size preset's geometry."""
    from workbench import registry

    f = _family(family_name)
    pipe = _pipeline(f)
    first = pipe.stages[0]
    results = []
    for p in registry.PRESETS.for_family(f.name):
        result = LintResult(f"{p.name}@v{p.version}", [])
        try:
            p.lint()
            batch = f.sampling_params(p.name, version=p.version).to_batch()
        except WorkbenchError as exc:
            result.problems.append(str(exc))
        else:
            for name, validator in first.input_checks(batch).items():
                value = getattr(batch, name) if hasattr(batch, name) else batch.extra.get(name)
                problem = validator(value)
                if problem is None:
                    continue
                if value is None and name not in p.defaults:
                    result.left_to_request.append(name)
                else:
                    result.problems.append(f"{name}: expected {validator.expected}, got {problem}")
        unknown = sorted(set(p.stage_schemas) - set(pipe.stage_names))
        if unknown:
            result.problems.append(f"stage_schemas name stages not in the chain: {unknown}")
        results.append(result)
    return results


def print_lint(results: Sequence[LintResult]) -> None:
    for r in results:
        status = "FAIL: " + "; ".join(r.problems) if r.problems else "ok"
        if r.left_to_request:
            status += f" (left to the request: {', '.join(r.left_to_request)})"
        print(f"{r.preset:<28} {status}")


def show_refusals(family_name: str, preset: str | None = None) -> None:
    """What the registry and the override schemas refuse, with their messages."""
    from workbench.api.presets import InferencePreset, parse_overrides

    f = _family(family_name)
    p = f.preset(preset)
    bad = InferencePreset(f.name, "lint-demo", 1, p.workload_type, "an undeclared key",
                          defaults={"num_steps": 4})
    attempts = [("preset with key 'num_steps'", lambda: bad.lint())]
    for stage, schema in p.stage_schemas.items():
        key = next(iter(schema))
        attempts.append((f"override {stage}.no_such_key", lambda s=stage: p.validate_overrides(
            parse_overrides([f"{s}.no_such_key=1"]))))
        attempts.append((f"override {stage}.{key} with a bad value", lambda s=stage, k=key: p.validate_overrides(
            parse_overrides([f"{s}.{k}=not-a-choice"]))))
    attempts.append(("override NoSuchStage.x", lambda: p.validate_overrides(parse_overrides(["NoSuchStage.x=1"]))))
    for what, attempt in attempts:
        try:
            attempt()
            print(f"{what}: accepted")
        except WorkbenchError as exc:
            print(f"{what}: refused: {exc}")


def example_overrides(family_name: str, preset: str | None = None) -> list[str]:
    """One valid `Stage.key=value` per choice-valued key of the preset's stage schemas."""
    p = _family(family_name).preset(preset)
    return [f"{stage}.{key}={allowed[-1]}" for stage, schema in p.stage_schemas.items()
            for key, allowed in schema.items() if isinstance(allowed, tuple)]


def print_overrides(family_name: str, preset: str | None, overrides: Sequence[str] | None = None) -> None:
    """Validate `Stage.key=value` overrides against the preset's schemas and show them grouped."""
    from workbench.api.presets import parse_overrides

    overrides = example_overrides(family_name, preset) if overrides is None else list(overrides)
    p = _family(family_name).preset(preset)
    grouped = p.validate_overrides(parse_overrides(overrides))
    print(f"requested: {overrides}")
    for stage, values in grouped.items():
        print(f"{stage}: {values}")
    if not grouped:
        print("no overrides")


@dataclass
class SweepCell:
    request: dict[str, Any]
    media: dict[str, torch.Tensor]
    stats: dict[str, float]


@dataclass
class Sweep:
    family: str
    steps: list[int]
    guidance: list[float]
    cells: list[list[SweepCell]]  # [steps][guidance]
    sampling_rate: int | None


def accepts(family_name: str, preset: str | None, request: Mapping[str, Any]) -> bool:
    """Whether the pipeline's input validation stage (field rules and cross-checks, e.g. a
    minimum step count) accepts this request."""
    f = _family(family_name)
    try:
        _pipeline(f).stages[0](f.sampling_params(preset, request).to_batch())
    except WorkbenchError:
        return False
    return True


def sweep_grid(family_name: str, preset: str | None = None) -> tuple[list[int], list[float]]:
    """A fixed grid around the preset: steps {1, s, 2s} x guidance {1 (no CFG), g}, less the
    step counts the pipeline refuses."""
    params = _family(family_name).sampling_params(preset)
    s, g = params.num_inference_steps, params.guidance_scale
    steps = [n for n in sorted({1, s, 2 * s}) if accepts(family_name, preset, {"num_inference_steps": n})]
    return steps, sorted({1.0, float(g)})


def run_sweep(family_name: str, preset: str | None = None, device: str = "cpu", seed: int = 0,
              steps: Sequence[int] | None = None, guidance: Sequence[float] | None = None) -> Sweep:
    """Generate every grid point; `delta` is the mean |difference| from the preset's own output
    (the grid's preset point when it has one, else one more run)."""
    params = _family(family_name).sampling_params(preset)
    default_steps, default_guidance = sweep_grid(family_name, preset)
    steps, guidance = list(steps or default_steps), list(guidance or default_guidance)
    samples = {(s, g): generate_sample(family_name, preset, device,
                                       {"seed": seed, "num_inference_steps": s, "guidance_scale": g})
               for s in steps for g in guidance}
    base = samples.get((params.num_inference_steps, params.guidance_scale)) or generate_sample(
        family_name, preset, device, {"seed": seed})
    name = next(iter(base.media))
    cells = []
    for s in steps:
        row = []
        for g in guidance:
            media = samples[(s, g)].media
            out, ref = media[name].float(), base.media[name].float()
            row.append(SweepCell({"seed": seed, "num_inference_steps": s, "guidance_scale": g}, media,
                                 {"mean": float(out.mean()), "std": float(out.std()),
                                  "delta": float((out - ref).abs().mean())}))
        cells.append(row)
    return Sweep(family_name, steps, guidance, cells, base.sampling_rate)


def print_sweep(sweep: Sweep) -> None:
    print(f"{'steps':>5}  {'guidance':>8}  {'mean':>10}  {'std':>10}  {'delta':>10}")
    for row in sweep.cells:
        for c in row:
            print(f"{c.request['num_inference_steps']:>5}  {c.request['guidance_scale']:>8.2f}  "
                  f"{num(c.stats['mean']):>10}  {num(c.stats['std']):>10}  {num(c.stats['delta']):>10}")


def plot_sweep(sweep: Sweep):
    from workbench.media_plots import plot_sweep as draw

    return draw([[c.media for c in row] for row in sweep.cells], [f"steps {s}" for s in sweep.steps],
                [f"guidance {g:g}" for g in sweep.guidance], sweep.sampling_rate)


def slider_specs(family_name: str, preset: str | None = None, device: str = "cpu",
                 request: Mapping[str, Any] | None = None) -> dict[str, tuple]:
    """(min, max, step, value) per tuning slider, starting at the resolved request; `shift`
    only when the family's scheduler has a flow shift."""
    f = _family(family_name)
    params = f.sampling_params(preset, request)
    s, g = params.num_inference_steps, float(params.guidance_scale or 1.0)
    fewest = next(n for n in range(1, s + 1) if accepts(family_name, preset, {"num_inference_steps": n}))
    specs = {"steps": (fewest, max(4 * s, 8), 1, s), "guidance": (0.0, max(2.0 * g, 10.0), 0.5, g)}
    shift = params.flow_shift
    if shift is None:
        shift = _pipeline(f, device).scheduler.config.get("flow_shift")
    if shift is not None:
        specs["shift"] = (0.5, max(2.0 * float(shift), 8.0), 0.5, float(shift))
    specs["seed"] = (0, 1000, 1, params.seed)
    return specs


def figure_png(fig, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (for static snapshots next to live widgets)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def snapshot_box(children, snapshot: bytes | None = None):
    """A VBox whose display also carries a static PNG `snapshot` (image/png beside the
    widget view in one bundle): JupyterLab renders the live widget; an executed notebook
    opened without a kernel, its nbconvert HTML and the blessed copy (the bundle survives
    `workbench.notebooks.normalize`) show the snapshot instead of `VBox(children=...`."""
    import base64

    import ipywidgets as widgets

    class SnapshotBox(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs):
            data = super()._repr_mimebundle_(**kwargs)
            if self.snapshot is not None:
                data["image/png"] = base64.b64encode(self.snapshot).decode("ascii")
                data["text/plain"] = "(static snapshot of the widget; run the cell in JupyterLab to use it)"
            return data

    box = SnapshotBox(list(children))
    box.snapshot = snapshot
    return box


def tuning_widget(family_name: str, preset: str | None = None, device: str = "cpu",
                  request: Mapping[str, Any] | None = None):
    """Sliders with a live preview (regenerates when a slider is released); its display
    carries a PNG snapshot of the latest preview for headless runs (`snapshot_box`).

    Generation runs outside the preview's Output capture and only the finished figure and
    statistics go into it: library output printed by a run inside the capture stalled
    headless kernels (ltx2, then wan_i2v under papermill) on a loaded machine."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import Image, clear_output, display

    sliders = {}
    for name, (lo, hi, step, value) in slider_specs(family_name, preset, device, request).items():
        cls = widgets.IntSlider if isinstance(value, int) else widgets.FloatSlider
        sliders[name] = cls(min=lo, max=hi, step=step, value=value, description=name, continuous_update=False)
    out = widgets.Output()
    box = snapshot_box([*sliders.values(), out])

    def preview(_change=None):
        values = {name: slider.value for name, slider in sliders.items()}
        sample = generate_sample(family_name, preset, device, request_from(**values))
        fig = plot_sample(sample, title=", ".join(f"{k}={v}" for k, v in values.items()))
        box.snapshot = figure_png(fig)
        plt.close(fig)  # shown once, as a PNG: the same with the inline and the ipympl backend
        with out:
            clear_output(wait=True)
            display(Image(data=box.snapshot))
            print_sample(sample)

    for slider in sliders.values():
        slider.observe(preview, names="value")
    preview()
    return box


# ---- 04 parity / 05 trace ----------------------------------------------------------------
def plot_parity_media(parity):
    """Reference vs native decoded media, by the family's output kind."""
    from workbench.parity import plots

    draw = {"frames": plots.plot_frames, "waveform": plots.plot_waveforms, "joint": plots.plot_joint}
    kind = _family(parity.verdict.family).output_kind
    if kind not in draw:
        raise WorkbenchError(f"family {parity.verdict.family}: no parity plot for output kind {kind!r}")
    return draw[kind](parity.reference, parity.native)


def save_parity(parity, out_dir: str | Path) -> list[Path]:
    """The verdict JSON and the self-contained HTML report, under `out_dir`."""
    from workbench.parity.report import write_report
    from workbench.players import model_sampling_rate

    stem = Path(out_dir) / f"{parity.verdict.family}_parity"
    paths = [parity.verdict.to_json(f"{stem}_verdict.json"),
             write_report(parity.verdict, parity.reference, parity.native, f"{stem}_report.html",
                          sampling_rate=model_sampling_rate(getattr(parity, "model_dir", None)))]
    for path in paths:
        print(f"wrote {Path(path).as_posix()}")
    return paths


def require_pass(verdict) -> None:
    """Print the verdict; a failed one raises, so a batch run marks this notebook failed."""
    from workbench.errors import ParityError

    passed = sum(c.passed for c in verdict.checkpoints)
    print(f"verdict: {'PASS' if verdict.passed else 'FAIL'} ({passed} of {len(verdict.checkpoints)} checkpoints "
          f"within {verdict.mode}-mode tolerance)")
    first = verdict.first_divergence
    if first is not None:
        raise ParityError(f"first divergence at {first.name}: {first.reason}; look at: {first.hint}")
    if not verdict.passed:
        raise ParityError("no checkpoints were compared")


def print_fault_check(module: str, scale: float, diff) -> None:
    """The trace diff must name the module a fault was injected into; raises when it does not."""
    first = diff.first_divergence
    print(f"injected : output x {1 + scale:g} in {module} (native side)")
    if first is None:
        raise WorkbenchError(f"the trace diff found no divergence; the faulty module was {module!r}")
    drift = "-" if first.rel_drift is None else num(first.rel_drift)
    print(f"diff says: first divergence at {first.module} {first.tensor} step={first.step} call={first.call} "
          f"(rel drift {drift})")
    if first.module != module:
        raise WorkbenchError(f"the trace diff named {first.module!r}, not the faulty module {module!r}")
    print("found    : yes, the first divergent module is the faulty one")


# ---- 06 performance ----------------------------------------------------------------------
def perf_store_path(store: str | None, out_dir: str | Path) -> Path:
    """The notebook's perf store: `store`, else perf.sqlite under `out_dir`, which outlives
    the kernel, so re-running the notebook in the same run directory grows the history."""
    return Path(store) if store else Path(out_dir) / "perf.sqlite"


def measure_performance(family_name: str, preset: str | None = None, device: str = "cpu",
                        request: Mapping[str, Any] | None = None, runs: int = 6,
                        store_path: str | Path = "artifacts/perf.sqlite"):
    """`runs` paired runs of the native pipeline and the official reference on `device`, with
    a progress bar; each run of each side is stored as it is measured (run_source "notebook")."""
    from workbench.perf.pipelines import load_pair, measure
    from workbench.perf.store import PerfStore

    pair = load_pair(family_name, preset, request, device)
    with PerfStore(store_path) as store:
        measurement = measure(pair, runs, run_source="notebook", on_record=store.add, progress=True)
    print(f"stored {sum(len(r) for r in measurement.records.values())} records in {Path(store_path).as_posix()} "
          f"(session {measurement.session})")
    return measurement
