"""`generate()`: one request through a family's native pipeline, media written to disk."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import torch

from workbench.api.params import SamplingParam
from workbench.runtime.pipeline import ComposedPipeline

# (model dir, device, mode, compile) -> (files stamp, pipeline): one pipeline per key, rebuilt
# (and the stale one dropped) when any file under the model directory changes.
_PIPELINES: dict[tuple, tuple[tuple[int, int], ComposedPipeline]] = {}


def files_stamp(model_dir: Path) -> tuple[int, int]:
    """(file count, newest mtime) of a model directory: changes when a weight, config or
    manifest is edited, added or removed; a stat per file, so cheap next to a load."""
    stats = [p.stat() for p in Path(model_dir).rglob("*") if p.is_file()]
    return len(stats), max((s.st_mtime_ns for s in stats), default=0)


MODES = ("auto", "exact", "fast")


def resolve_mode(mode: str, device: torch.device) -> str:
    """'auto' is fast on CUDA and exact (fp32, as loaded) elsewhere."""
    from workbench.errors import ParameterError

    if mode not in MODES:
        raise ParameterError(f"--mode {mode!r}: expected one of {MODES}")
    return ("fast" if device.type == "cuda" else "exact") if mode == "auto" else mode


def load_pipeline(model_dir: str | Path, device: str | torch.device = "auto", mode: str = "exact",
                  compile: bool = False, progress: bool = True) -> ComposedPipeline:
    """Load (once per process, again when its files change) the native pipeline of a converted directory.

    `mode="fast"` applies the family's FastMode: bf16 modules, SDPA backend priority and,
    with `compile=True`, torch.compile on the declared modules.
    """
    from workbench import registry
    from workbench.runtime.device import resolve_device
    from workbench.runtime.manifest import read_manifest

    model_dir = Path(model_dir).resolve()
    manifest = read_manifest(model_dir)
    dev = resolve_device(device)
    mode = resolve_mode(mode, dev)
    key, stamp = (str(model_dir), str(dev), mode, compile), files_stamp(model_dir)
    cached_stamp, pipe = _PIPELINES.get(key, (None, None))
    if pipe is None or cached_stamp != stamp:
        _PIPELINES.pop(key, None)  # a stale pipeline is not kept alive next to its replacement
        options = {}
        if mode == "fast":
            fast = registry.family_for_manifest(manifest, model_dir).fast
            options = dict(module_dtypes=dict(fast.module_dtypes), attention_backends=fast.attention_backends,
                           module_setup=fast.module_setup, compile_modules=fast.compile_modules if compile else (),
                           module_classes=dict(fast.module_classes))
        pipe = ComposedPipeline.from_pretrained(model_dir, device=dev, **options)
        _PIPELINES[key] = (stamp, pipe)
    pipe.progress = progress  # reaches the stages that draw a bar (a cached pipeline outlives a call)
    return pipe


@dataclass
class Generation:
    params: SamplingParam
    output: torch.Tensor          # frames [B,F,H,W,3] in [0,1] or waveform [B,C,T]
    media: Any                    # VideoMedia | AudioMedia | JointMedia
    stage_timings: dict[str, float]
    peak_memory_mb: float | None
    wall_s: float
    paths: list[Path] = field(default_factory=list)
    batch: Any = None
    audio: torch.Tensor | None = None  # a joint family's waveform [B,C,T] (its frames are `output`)


def check_outputs(family, out: str | Path | None, frames_dir: str | Path | None = None,
                  paired: bool = False) -> None:
    """Refuse, before anything runs, outputs that could not be written: an extension the family's
    media kind has no writer for, a missing mp4 encoder, a path that is a directory (or a file
    where a directory is needed) or lies somewhere this process cannot write."""
    import importlib.util

    from workbench.errors import ParameterError
    from workbench.io import check_output_dir, check_output_file
    from workbench.media import AUDIO_SUFFIXES, VIDEO_SUFFIXES

    if out is not None:
        out = Path(out)
        suffixes = {"frames": VIDEO_SUFFIXES, "waveform": AUDIO_SUFFIXES, "joint": (".mp4",)}.get(family.output_kind)
        if suffixes is None:
            raise ParameterError(f"family {family.name}: output kind {family.output_kind!r} has no writer")
        if out.suffix not in suffixes:
            what = {"frames": "video", "waveform": "audio", "joint": "joint audio-video"}[family.output_kind]
            raise ParameterError(f"--out {out}: family {family.name} writes {what}; expected a file ending in "
                                 f"{' or '.join(suffixes)}")
        if out.suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
            raise ParameterError(f"--out {out}: mp4 needs the imageio-ffmpeg package (a declared dependency: "
                                 "pip install imageio-ffmpeg==0.8.1); or write a .gif, or PNGs with --frames-dir")
        check_output_file(out, "--out")
        check_output_file(Path(str(out) + ".json"), "--out (its .json sidecar)")
        if paired:
            check_output_file(out.with_suffix(".wav"), "--paired (the .wav next to --out)")
    if frames_dir is not None:
        if family.output_kind == "waveform":
            raise ParameterError(f"--frames-dir: family {family.name} writes audio, it has no frames")
        check_output_dir(frames_dir, "--frames-dir")


def generate(family_name: str, *, preset: str | None = None, request: Mapping[str, Any] | None = None,
             device: str = "auto", mode: str = "auto", compile: bool = False, model_dir: str | Path | None = None,
             out: str | Path | None = None, frames_dir: str | Path | None = None, hooks=None,
             progress: bool = True, paired: bool = False) -> Generation:
    """`paired` writes a joint audio-video result as `out` (.mp4) plus a .wav next to it
    instead of one mp4 with an audio track."""
    from workbench import registry
    from workbench.api.workload import JointMedia
    from workbench.errors import ParameterError
    from workbench.families.offline import quiet_hf
    from workbench.media import write_outputs
    from workbench.parity.runner import resolve_model_dir
    from workbench.runtime.device import resolve_device

    family = registry.get_family(family_name)
    params = family.sampling_params(preset, request)
    if paired and family.output_kind != "joint":
        raise ParameterError(f"--paired: family {family.name} writes {family.output_kind}, not joint audio-video")
    check_outputs(family, out, frames_dir, paired)
    dev = resolve_device(device)
    quiet_hf()
    root = resolve_model_dir(family, model_dir)
    pipe = load_pipeline(root / "converted", device=dev, mode=mode, compile=compile, progress=progress)
    if resolve_mode(mode, dev) == "fast":
        params = params.replace(stage_overrides=family.fast.stage_overrides + tuple(params.stage_overrides))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    batch = pipe(params, hooks=hooks)
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    # The finished batch carries every request field plus what the model decided (e.g. an audio rate).
    media = family.media(batch)
    if isinstance(media, JointMedia):
        media = replace(media, muxed=not paired)
    result = Generation(params, batch.output, media, dict(batch.stage_timings), peak, wall, batch=batch,
                        audio=batch.extra.get("waveform"))
    if out is not None or frames_dir is not None:
        result.paths = write_outputs(family, result, out, frames_dir)
    return result
