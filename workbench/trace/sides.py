"""Activation traces of both sides of a parity run: the official pipeline and the native one,
same request, same module names, so `trace_diff` lines them up record by record.

The native denoising loop sets the step context itself. The official loop does not, so
the reference side derives it from the denoiser's own calls: the native run counts how
many root calls one step makes (two with sequential CFG), and on the reference side a
pre-hook on each traced root sets `step = calls so far // calls per step` while the root
runs (None outside it, as on the native side).

A fault can be injected into one native module (its output scaled by 1 + `scale`) to
check that the trace diff names it: what a real divergence looks like in the plots.
"""

from __future__ import annotations

from collections import Counter
import json
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from workbench.api.params import SamplingParam
from workbench.errors import WorkbenchError
from workbench.trace.context import current_step, set_step
from workbench.trace.tracer import DEFAULT_STATS, Tracer

DENOISERS = ("transformer", "transformer_2", "unet")
#: Exact-mode traces agree bitwise; fast mode (bf16, other kernels) uses the DESIGN's 0.5 %.
EXACT_THRESHOLD, FAST_THRESHOLD = 1e-6, 0.005


@dataclass
class TracePair:
    family: str
    reference: Path
    native: Path
    modules: list[str]       # traced module trees (canonical prefixes)
    calls_per_step: int      # root calls in one denoising step
    params: SamplingParam
    device: str
    layers: str | None
    steps: set[int] | None
    stats: tuple[str, ...]


def threshold_for(device: str | torch.device) -> float:
    from workbench.runtime.device import resolve_device

    return EXACT_THRESHOLD if resolve_device(device).type == "cpu" else FAST_THRESHOLD


def _modules_of(holder: Any, names: Sequence[str], side: str) -> dict[str, torch.nn.Module]:
    found = {}
    for name in names:
        module = holder.get_module(name) if hasattr(holder, "get_module") else getattr(holder, name, None)
        if isinstance(module, torch.nn.Module):
            found[name] = module
        elif name not in DENOISERS:
            raise WorkbenchError(f"{side} pipeline has no torch module {name!r} to trace")
    return found


@contextmanager
def _fault(module: torch.nn.Module, scale: float) -> Iterator[None]:
    def scale_output(_m, _args, output):
        if not isinstance(output, torch.Tensor):
            raise WorkbenchError(f"fault injection needs a module with a tensor output, got {type(output).__name__}")
        return output * (1.0 + scale)

    handle = module.register_forward_hook(scale_output, prepend=True)  # before the tracer records it
    try:
        yield
    finally:
        handle.remove()


def trace_native(family, params: SamplingParam, path: Path, modules: Sequence[str], layers: str | None,
                 steps: set[int] | None, stats: tuple[str, ...], device: str,
                 fault: tuple[str, float] | None = None) -> tuple[int, list[str]]:
    """Trace the native run into `path`; return the root calls of one denoising step and
    the traced roots."""
    from workbench.api.generate import load_pipeline
    from workbench.parity.runner import resolve_model_dir

    pipe = load_pipeline(resolve_model_dir(family, None) / "converted", device=device, progress=False)
    roots = _modules_of(pipe, modules, "native")
    calls: Counter = Counter()
    with ExitStack() as stack:
        tracer = stack.enter_context(Tracer(path, layers=layers, stats=stats, steps=steps))
        for name, module in roots.items():
            tracer.attach(module, prefix=name)
            handle = module.register_forward_pre_hook(lambda *_: calls.update([current_step()]))
            stack.callback(handle.remove)
        if fault is not None:
            stack.enter_context(_fault(_submodule(roots, fault[0]), fault[1]))
        pipe(params)
    if not calls.get(0):
        raise WorkbenchError(f"native {family.name}: the traced modules {list(roots)} were not called in "
                             "denoising step 0 (does the denoising loop set the step context?)")
    return calls[0], list(roots)


def trace_reference(family, params: SamplingParam, path: Path, modules: Sequence[str], layers: str | None,
                    steps: set[int] | None, stats: tuple[str, ...], device: str, calls_per_step: int) -> None:
    from workbench.parity.runner import resolve_model_dir
    from workbench.runtime.device import resolve_device

    reference = family.reference
    if not hasattr(reference, "load_official"):
        raise WorkbenchError(f"{family.reference_module} has no load_official(official_dir, device): "
                             "tracing the official side needs the pipeline object")
    official = resolve_model_dir(family, None) / "official"
    dev = resolve_device(device)
    pipe = reference.load_official(official, dev)
    roots = _modules_of(pipe, modules, "official")
    calls = [0]

    def enter(*_):
        set_step(calls[0] // calls_per_step)
        calls[0] += 1

    with ExitStack() as stack:
        tracer = stack.enter_context(Tracer(path, layers=layers, stats=stats, steps=steps))
        for name, module in roots.items():
            tracer.attach(module, prefix=name)
            for handle in (module.register_forward_pre_hook(enter),
                           module.register_forward_hook(lambda *_: set_step(None))):  # after the tracer's hook
                stack.callback(handle.remove)
        try:
            reference.run_reference(official, params, dev, pipe=pipe)
        finally:
            set_step(None)


def _submodule(roots: Mapping[str, torch.nn.Module], canonical: str) -> torch.nn.Module:
    prefix, _, rest = canonical.partition(".")
    if prefix not in roots:
        raise WorkbenchError(f"fault module {canonical!r}: not under a traced module {sorted(roots)}")
    try:
        return roots[prefix].get_submodule(rest) if rest else roots[prefix]
    except AttributeError:
        raise WorkbenchError(f"fault module {canonical!r}: no such submodule") from None


def trace_both_sides(family_name: str, preset: str | None = None, request: Mapping[str, Any] | None = None,
                     out_dir: str | Path = "artifacts", device: str = "cpu", modules: Sequence[str] | None = None,
                     layers: str | None = None, steps: Sequence[int] | None = None,
                     stats: tuple[str, ...] = DEFAULT_STATS) -> TracePair:
    """Trace `modules` (default: the denoisers) on the native and the official side."""
    from workbench import registry
    from workbench.families.offline import quiet_hf

    family = registry.get_family(family_name)
    params = family.sampling_params(preset, request)
    quiet_hf()
    modules = list(modules or DENOISERS)
    out_dir = Path(out_dir)
    step_set = set(steps) if steps else None
    native = out_dir / f"{family.name}_trace_native.jsonl"
    reference = out_dir / f"{family.name}_trace_reference.jsonl"
    per_step, roots = trace_native(family, params, native, modules, layers, step_set, stats, device)
    trace_reference(family, params, reference, roots, layers, step_set, stats, device, per_step)
    return TracePair(family.name, reference, native, roots, per_step, params, device, layers, step_set, stats)


def pick_fault_module(pair: TracePair) -> str:
    """A submodule in the middle of the traced order whose output is one tensor (a fault
    scales it): deterministic and generic."""
    seen: list[str] = []
    for record in map(json.loads, pair.native.read_text().splitlines()):
        module = record["module"]
        if "." in module and record["tensor"] == "output" and module not in seen:
            seen.append(module)
    if not seen:
        raise WorkbenchError(f"{pair.native}: no traced submodule with a single tensor output to inject a fault into")
    return seen[len(seen) // 2]


def trace_with_fault(pair: TracePair, module: str, scale: float = 0.05) -> Path:
    """Re-trace the native side, same settings, with `module`'s output scaled by 1 + `scale`."""
    from workbench import registry

    path = pair.native.with_name(f"{pair.family}_trace_native_fault.jsonl")
    trace_native(registry.get_family(pair.family), pair.params, path, pair.modules, pair.layers, pair.steps,
                 pair.stats, pair.device, fault=(module, scale))
    return path
