"""Timing the native pipeline against its official reference: same weights, same request,
one process, each side warmed up once, runs interleaved (reference, then native).

Shared by `benchmarks/cpu_pipelines.py` and notebook 06, so a benchmark and a notebook
run of the same family on the same machine land in the same cohorts of the perf store.

What is timed, per run:
- end-to-end latency of the whole call, with device syncs before and after (the reference
  runs the family's own run function, which also records its parity checkpoints: a small
  cost counted against the reference);
- on both sides the same module calls, wrapped by a ModuleTimer: text encoder,
  transformer(s) and VAE decode. The component metrics (text encoder, DiT per denoising
  step, VAE decode) come from these, so they compare like with like; a module a family
  does not have leaves its metric None. The per-call syncs cost each side the same little
  overlap on CUDA; on CPU they are no-ops;
- native: also the stage timings the runtime keeps anyway (the per-stage breakdown).
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from workbench.api.params import SamplingParam
from workbench.perf.measure import ModuleTimer, make_record, peak_memory, timed
from workbench.perf.records import PerfRecord

NATIVE, REFERENCE = "native", "reference"
SIDES = (NATIVE, REFERENCE)

# metric -> the (module, method) calls it sums, on either side.
COMPONENT_MODULES: dict[str, tuple[tuple[str, str], ...]] = {
    "text_encoder_s": (("text_encoder", "forward"),),
    "dit_s": (("transformer", "forward"), ("transformer_2", "forward")),
    "vae_decode_s": (("vae", "decode"),),
}
PER_STEP = frozenset({"dit_s"})  # divided by num_inference_steps, like the GPU benchmark's records


COMPONENTS = tuple(COMPONENT_MODULES)


@dataclass
class RunTiming:
    side: str
    latency_s: float
    peak_memory_mb: float | None
    modules: dict[str, float]  # seconds per timed module call (module_key), both sides
    stages: dict[str, float]  # native: seconds per stage; reference: {} (the official call has no stages)
    components: dict[str, float | None]  # text_encoder_s, dit_s (per step), vae_decode_s


def module_key(attribute: str, method: str) -> str:
    return attribute if method == "forward" else f"{attribute}.{method}"


def components(module_seconds: Mapping[str, float], steps: int) -> dict[str, float | None]:
    """Component metrics from the timed module calls; dit_s per denoising step."""
    out: dict[str, float | None] = {}
    for metric, calls in COMPONENT_MODULES.items():
        present = [module_seconds[k] for k in (module_key(a, m) for a, m in calls) if k in module_seconds]
        value = sum(present) if present else None
        out[metric] = value / steps if value is not None and metric in PER_STEP else value
    return out


@contextmanager
def timed_modules(modules: Callable[[str], Any], device: torch.device) -> Iterator[ModuleTimer]:
    """A ModuleTimer around every COMPONENT_MODULES call that `modules(name)` finds, removed after."""
    timer = ModuleTimer(device)
    for calls in COMPONENT_MODULES.values():
        for attribute, method in calls:
            module = modules(attribute)
            if module is not None:
                timer.wrap(module_key(attribute, method), module, method)
    try:
        yield timer
    finally:
        timer.remove()


@dataclass
class PairedPipelines:
    """Both sides of one family, loaded once, ready to be run again and again."""

    family: Any  # FamilyConfig
    preset: str
    params: SamplingParam  # the request: the recipe both sides share
    device: torch.device
    mode: str  # exact (CPU, fp32) | fast (CUDA: the family's FastMode vs the official reduced-precision load)
    native: Any  # ComposedPipeline
    official: Any  # the diffusers pipeline
    official_dir: Path
    native_params: SamplingParam | None = None  # params plus the fast mode's stage overrides

    def __post_init__(self) -> None:
        if self.native_params is None:
            self.native_params = self.params

    @property
    def steps(self) -> int:
        return int(self.params.num_inference_steps)

    @property
    def frames(self) -> int | None:
        return self.params.num_frames if self.family.output_kind in ("frames", "joint") else None

    def run_native(self) -> RunTiming:
        def call():
            batch = self.native(self.native_params)
            batch.output = batch.output.cpu()  # the reference hands its media back on the host too
            return batch

        with timed_modules(self.native.get_module, self.device) as timer, peak_memory(self.device) as peak:
            batch, seconds = timed(call, self.device)
        modules = dict(timer.seconds)
        return RunTiming(NATIVE, seconds, peak["peak_mb"], modules, dict(batch.stage_timings),
                         components(modules, self.steps))

    def run_reference(self) -> RunTiming:
        run = self.family.reference.run_reference
        official = lambda name: getattr(self.official, name, None)  # noqa: E731
        with timed_modules(official, self.device) as timer, peak_memory(self.device) as peak:
            _, seconds = timed(lambda: run(self.official_dir, self.params, self.device, pipe=self.official),
                               self.device)
        modules = dict(timer.seconds)
        return RunTiming(REFERENCE, seconds, peak["peak_mb"], modules, {}, components(modules, self.steps))

    def run(self, side: str) -> RunTiming:
        return {NATIVE: self.run_native, REFERENCE: self.run_reference}[side]()

    def warm_up(self) -> None:
        """One untimed run per side: first calls pay for lazy initialisation and allocator growth."""
        self.run_reference()
        self.run_native()

    def identity(self, side: str) -> dict[str, str]:
        """The cohort fields a record of `side` gets (hardware and GPU are added by make_record)."""
        return {"model_id": f"{self.family.name} tiny", "workload_id": self.preset,
                "variant_id": f"{side}-{self.mode}-{self.device.type}"}

    @property
    def recipe(self) -> dict[str, Any]:
        return self.params.to_json_dict()

    def record(self, side: str, latency_s: float, run_source: str = "benchmark", **metrics: Any) -> PerfRecord:
        return make_record(**self.identity(side), recipe=self.recipe, latency_s=latency_s, frames=self.frames,
                           run_source=run_source, **metrics)

    def record_run(self, timing: RunTiming, run_source: str, extra: Mapping[str, Any]) -> PerfRecord:
        """One run as a normalized record; `extra` keeps the per-module and per-stage times."""
        return self.record(timing.side, timing.latency_s, run_source, peak_memory_mb=timing.peak_memory_mb,
                           **timing.components, extra={**extra, "mode": self.mode, "steps": self.steps,
                                                       "modules": timing.modules, "stages": timing.stages})


def load_pair(family_name: str, preset: str | None = None, request: Mapping[str, Any] | None = None,
              device: str | torch.device = "cpu") -> PairedPipelines:
    """The family's tiny reference build (built once into the cache), both sides loaded on `device`.

    Mode follows `generate --mode auto`: exact on CPU, fast on CUDA, where the official side
    is loaded the official reduced-precision way (as fast-mode parity does)."""
    from workbench import registry
    from workbench.api.generate import load_pipeline, resolve_mode
    from workbench.families.offline import quiet_hf
    from workbench.parity.runner import load_official, resolve_model_dir
    from workbench.runtime.device import resolve_device

    family = registry.get_family(family_name)
    params = family.sampling_params(preset, request)
    dev = resolve_device(device)
    mode = resolve_mode("auto", dev)
    quiet_hf()
    root = resolve_model_dir(family, None)
    native = load_pipeline(root / "converted", device=dev, mode=mode, progress=False)
    native_params = params
    if mode == "fast":
        native_params = params.replace(stage_overrides=family.fast.stage_overrides + tuple(params.stage_overrides))
    official = load_official(family, root / "official", dev, mode)
    return PairedPipelines(family, family.preset(preset).name, params, dev, mode, native, official,
                           root / "official", native_params)


@dataclass
class Measurement:
    """One measuring session: `runs` paired runs, one record per run and side."""

    pair: PairedPipelines
    session: str
    timings: list[dict[str, RunTiming]] = field(default_factory=list)  # per run: side -> timing
    records: dict[str, list[PerfRecord]] = field(default_factory=lambda: {side: [] for side in SIDES})

    @property
    def runs(self) -> int:
        return len(self.timings)


def measure(pair: PairedPipelines, runs: int, run_source: str = "benchmark",
            on_record: Callable[[PerfRecord], None] | None = None, progress: bool = False,
            warm_up: bool = True) -> Measurement:
    """Warm up, then `runs` x (reference, native); each run becomes a record (`on_record`
    stores it as it comes, so an interrupted session keeps what it measured)."""
    from tqdm.auto import tqdm

    from workbench.errors import ParameterError

    if runs < 1:
        raise ParameterError(f"runs={runs}: expected at least 1 run per side")
    if warm_up:
        pair.warm_up()
    measurement = Measurement(pair, uuid.uuid4().hex[:12])
    bar = tqdm(range(runs), desc=f"{pair.family.name} on {pair.device}", unit="run", disable=not progress)
    for i in bar:
        run = {side: pair.run(side) for side in (REFERENCE, NATIVE)}
        measurement.timings.append(run)
        for side in SIDES:
            record = pair.record_run(run[side], run_source, {"session": measurement.session, "run": i})
            measurement.records[side].append(record)
            if on_record is not None:
                on_record(record)
    return measurement
