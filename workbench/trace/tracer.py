"""Activation trace: per-module output statistics as JSONL, driven by environment variables.

The same hooks attach to the native and the reference module trees; a `name_map` renames
one side's modules to canonical names so `trace-diff` can line the two files up. Each
record is one (module, output tensor, denoising step, call) with the chosen statistics;
`call` counts the module's calls within a step, so a reference that runs the conditional
and unconditional passes separately lines up call by call.

Environment (DESIGN section 7):
  WORKBENCH_TRACE_OUTPUT  JSONL path; unset = tracing off
  WORKBENCH_TRACE_LAYERS  regex searched in canonical module names; empty = all
  WORKBENCH_TRACE_STATS   comma list of abs_mean,sum,min,max,mean,std,shape,dtype
  WORKBENCH_TRACE_STEPS   comma list of step ints; empty = all (records outside a step are
                          kept only when no step filter is set)
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.io import atomic_path
from workbench.trace.context import current_step

NUMERIC_STATS = {
    "abs_mean": lambda x: x.abs().mean(),
    "sum": torch.sum,
    "min": torch.min,
    "max": torch.max,
    "mean": torch.mean,
    "std": lambda x: x.std(correction=0),
}
STATS = (*NUMERIC_STATS, "shape", "dtype")
DEFAULT_STATS = ("abs_mean", "max", "shape", "dtype")

ENV_OUTPUT = "WORKBENCH_TRACE_OUTPUT"
ENV_LAYERS = "WORKBENCH_TRACE_LAYERS"
ENV_STATS = "WORKBENCH_TRACE_STATS"
ENV_STEPS = "WORKBENCH_TRACE_STEPS"


def tensor_stats(tensor: torch.Tensor, stats: tuple[str, ...]) -> dict[str, Any]:
    """The chosen statistics of one tensor (float64 reductions; non-finite values as strings)."""
    out: dict[str, Any] = {}
    values = tensor.detach().to(torch.float64) if tensor.numel() else None
    for stat in stats:
        if stat == "shape":
            out[stat] = list(tensor.shape)
        elif stat == "dtype":
            out[stat] = str(tensor.dtype).removeprefix("torch.")
        elif values is None:
            out[stat] = None
        else:
            value = float(NUMERIC_STATS[stat](values))
            out[stat] = value if math.isfinite(value) else str(value)
    return out


def named_tensors(output: Any, name: str = "output") -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors inside a module output: `output`, `output.0`, `output.sample`, nested as needed."""
    if isinstance(output, torch.Tensor):
        yield name, output
    elif isinstance(output, Mapping):
        for key, value in output.items():
            yield from named_tensors(value, f"{name}.{key}")
    elif isinstance(output, (tuple, list)):
        for index, value in enumerate(output):
            yield from named_tensors(value, f"{name}.{index}")


class Tracer:
    """Forward hooks that write one JSONL record per (module, tensor, step, call).

    Records are written only while the tracer is open (`with tracer:`); the file is
    written fresh each run under a temporary name and published on exit, even when the
    traced run raised, because a partial trace is what one debugs a crash with.
    """

    def __init__(self, output: str | Path, layers: str | None = None,
                 stats: tuple[str, ...] = DEFAULT_STATS, steps: set[int] | None = None):
        unknown = [s for s in stats if s not in STATS]
        if unknown:
            raise WorkbenchError(f"{ENV_STATS}: unknown stat(s) {unknown}; expected any of {list(STATS)}")
        try:
            self.layers = re.compile(layers) if layers else None
        except re.error as exc:
            raise WorkbenchError(f"{ENV_LAYERS}: invalid regex {layers!r}: {exc}") from None
        self.output = Path(output)
        self.stats = tuple(stats)
        self.steps = frozenset(steps) if steps else None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._calls: Counter[tuple[str, int | None]] = Counter()
        self._file = None
        self._publish = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Tracer | None":
        """A tracer configured by the WORKBENCH_TRACE_* variables; None when tracing is off."""
        env = os.environ if environ is None else environ
        output = env.get(ENV_OUTPUT, "").strip()
        if not output:
            return None
        stats = tuple(s.strip() for s in env.get(ENV_STATS, "").split(",") if s.strip()) or DEFAULT_STATS
        steps_text = env.get(ENV_STEPS, "").strip()
        try:
            steps = {int(s) for s in steps_text.split(",") if s.strip()} if steps_text else None
        except ValueError:
            raise WorkbenchError(f"{ENV_STEPS}: expected a comma list of step integers, got {steps_text!r}") from None
        return cls(output, layers=env.get(ENV_LAYERS, "") or None, stats=stats, steps=steps)

    # ---- hooks ----
    def attach(self, module: nn.Module, prefix: str = "transformer",
               name_map: Mapping[str, str] | None = None) -> int:
        """Hook every module of the tree whose canonical name matches; returns how many.

        Canonical name = `prefix` + "." + name_map.get(name, name) ("" is the root itself).
        """
        name_map = name_map or {}
        count = 0
        for name, sub in module.named_modules():
            local = name_map.get(name, name)
            canonical = f"{prefix}.{local}" if local else prefix
            if self.layers is None or self.layers.search(canonical):
                self._handles.append(sub.register_forward_hook(self._hook_for(canonical)))
                count += 1
        return count

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook_for(self, canonical: str):
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            if self._file is None:
                return
            step = current_step()
            if self.steps is not None and step not in self.steps:
                return
            call = self._calls[(canonical, step)]
            self._calls[(canonical, step)] += 1
            for tensor_name, tensor in named_tensors(output):
                record = {"module": canonical, "tensor": tensor_name, "step": step, "call": call,
                          **tensor_stats(tensor, self.stats)}
                self._file.write(json.dumps(record, sort_keys=True) + "\n")

        return hook

    # ---- file lifetime ----
    def __enter__(self) -> "Tracer":
        self._publish = atomic_path(self.output)
        self._file = self._publish.__enter__().open("w")
        self._calls.clear()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Detach the hooks and publish the file (see class docstring for why also on error)."""
        self.detach()
        if self._file is not None:
            self._file.close()
            self._file = None
            self._publish.__exit__(None, None, None)
            self._publish = None
