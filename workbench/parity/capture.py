"""The capture contract: named checkpoints in pipeline order, recorded the same way on both sides.

A checkpoint has a name (`prompt_embeds`, `timesteps`, `initial_latents`,
`latents_step_000`, `final_latents`, `frames`, `waveform`, ...), a kind that picks its
metrics and tolerance (`embedding`, `schedule`, `latent`, `frames`, `waveform`, `mel`,
and the finer ones below), an optional denoising step, and free-form metadata (which
expert ran, guidance scale).

Finer kinds (issue 16): `noise` (a denoiser prediction: each guidance branch
`noise_cond_step_NNN`, `noise_uncond_step_NNN`, LTX-2's `noise_stg_*` / `noise_isolated_*`,
and the guided `noise_guided_step_NNN` handed to the scheduler), `timestep` (the timestep a
denoiser call receives, `timestep_input_step_NNN`, dtype included), `positional` (position
tables computed outside the denoiser: Stable Audio's rotary table, LTX-2's RoPE coordinates)
and `decoded` (the VAE's raw output before postprocessing and clamping, `decoder_output`; its
input, the denormalised latents, is the `latent` checkpoint `decoder_input`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from workbench.runtime.hooks import PipelineHooks

KINDS = ("embedding", "schedule", "latent", "frames", "waveform", "mel", "noise", "timestep", "positional", "decoded")


def step_checkpoint(step: int, stream: str = "", what: str = "latents") -> str:
    """`latents_step_003`, `audio_latents_step_003`, `noise_cond_step_003`, `audio_noise_cond_step_003`."""
    return f"{stream + '_' if stream else ''}{what}_step_{step:03d}"


def as_tensor(value: Any) -> torch.Tensor | None:
    """A capturable tensor: the tensor itself, or a tuple/list of same-shape tensors stacked
    (a rotary table's (cos, sin))."""
    if isinstance(value, torch.Tensor):
        return value
    if (isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value)
            and len({tuple(v.shape) for v in value}) == 1):
        return torch.stack(list(value))
    return None


@dataclass
class Checkpoint:
    name: str
    kind: str
    tensor: torch.Tensor
    step: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class CaptureSet:
    """Ordered checkpoints of one pipeline run (CPU, detached copies)."""

    def __init__(self) -> None:
        self._items: dict[str, Checkpoint] = {}

    def record(self, name: str, tensor: torch.Tensor, kind: str, step: int | None = None,
               meta: dict[str, Any] | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"checkpoint {name!r}: unknown kind {kind!r} (expected one of {KINDS})")
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(tensor)
        self._items[name] = Checkpoint(name, kind, tensor.detach().to("cpu").clone(), step, dict(meta or {}))

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> Checkpoint:
        return self._items[name]

    def __iter__(self) -> Iterator[Checkpoint]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {n: c.tensor for n, c in self._items.items()}

    # ---- persistence: one safetensors file + one JSON index, written atomically ----
    def save(self, directory: str | Path, stem: str = "capture") -> Path:
        from safetensors.torch import save_file

        from workbench.io import atomic_path, atomic_write_text

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / f"{stem}.safetensors") as tmp:
            save_file({n: c.tensor.contiguous() for n, c in self._items.items()}, str(tmp))
        index = [{"name": c.name, "kind": c.kind, "step": c.step, "meta": c.meta} for c in self]
        atomic_write_text(directory / f"{stem}.json", json.dumps(index, indent=1) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, stem: str = "capture") -> "CaptureSet":
        from safetensors.torch import load_file

        directory = Path(directory)
        tensors = load_file(str(directory / f"{stem}.safetensors"))
        index = json.loads((directory / f"{stem}.json").read_text())
        out = cls()
        for row in index:
            out.record(row["name"], tensors[row["name"]], row["kind"], row.get("step"), row.get("meta"))
        return out


class CaptureHooks(PipelineHooks):
    """Records each stage's declared `captures` and the latents after every denoising step.

    A capture field is a batch attribute or a key of `batch.extra` (family state). A joint
    loop names its other streams in `info["streams"]` (stream -> that stream's step info);
    their latents are `batch.extra["<stream>_latents"]`, recorded as `<stream>_latents_step_NNN`.
    """

    def __init__(self, capture: CaptureSet, stream: str = ""):
        self.capture = capture
        self.stream = stream

    def on_stage_end(self, stage, batch):
        for field_name, (checkpoint, kind) in stage.captures.items():
            value = getattr(batch, field_name) if hasattr(batch, field_name) else batch.extra.get(field_name)
            value = as_tensor(value)
            if value is not None:
                self.capture.record(checkpoint, value, kind)

    def on_step_end(self, step, timestep, batch, info):
        """A step's finer tensors (`info["tensors"]`: name -> (tensor, kind)) first, then its latents;
        the main stream, then each other stream (`info["streams"]`) the same way. `info["once"]`
        (name -> (tensor, kind)) holds step-independent tables, recorded by name ahead of the step."""
        info = dict(info)
        streams = info.pop("streams", {})
        tensors = info.pop("tensors", {})
        for name, (tensor, kind) in info.pop("once", {}).items():
            if tensor is not None:
                self.capture.record(name, tensor, kind)
        meta = {"timestep": float(timestep), **info}
        self._record_step(step, self.stream, tensors, meta)
        self.capture.record(step_checkpoint(step, self.stream), batch.latents, "latent", step=step, meta=meta)
        for stream, stream_info in streams.items():
            stream_info = dict(stream_info)
            stream_tensors = stream_info.pop("tensors", {})
            stream_meta = {"timestep": float(timestep), **stream_info}
            self._record_step(step, stream, stream_tensors, stream_meta)
            self.capture.record(step_checkpoint(step, stream), batch.extra[f"{stream}_latents"], "latent",
                                step=step, meta=stream_meta)

    def _record_step(self, step, stream, tensors, meta):
        for what, (tensor, kind) in tensors.items():
            if tensor is not None:
                self.capture.record(step_checkpoint(step, stream, what), tensor, kind, step=step, meta=meta)
