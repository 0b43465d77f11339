"""One capture helper for every official diffusers pipeline (written once, used by each reference.py).

The official pipelines expose their intermediates in three ways, all handled here without
editing them:

- methods of the pipeline (`encode_prompt`, `prepare_latents`, positional helpers):
  `cap.wrap("encode_prompt")` records what each call returned (cloned tensors);
- module inputs (the transformer's first call): `cap.module_inputs("transformer", ("guidance",))`;
- the per-step state: `cap.step_callback()` gives the keyword arguments that make the
  pipeline call back after each step, `callback_on_step_end` or the legacy
  `callback(step, t, latents)` (chosen from the `__call__` signature), and
  `cap.wrap_scheduler_step()` records each `scheduler.step(model_output, t, sample)` call
  (the guided noise and the sample it produced);
- the finer checkpoints parity compares per step and at decode: `cap.denoiser(...)` records
  every denoiser call of a step (the timestep the model receives, each guidance branch's
  prediction, in the official call order), `cap.decoder(vae)` what the VAE's `decode`
  receives and returns before postprocessing.

Everything is undone when the `with` block ends, also when the pipeline raises.
`cap.standard(capture, ...)` then records the checkpoints every family shares (schedule,
initial latents, per-step latents, final latents) under the names the native stages use.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Iterable

import torch

from workbench.parity.capture import CaptureSet, step_checkpoint
from workbench.runtime.stages import first_output, model_timestep, timestep_value, watch_decode


def _detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_detach(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value


class OfficialCapture:
    """Record an official pipeline's intermediates for the duration of a `with` block."""

    def __init__(self, pipe, tensor_inputs: Iterable[str] = ("latents",)):
        self.pipe = pipe
        self.tensor_inputs = tuple(tensor_inputs)
        self.calls: dict[str, list[Any]] = {}     # wrapped method -> its return values, in call order
        self.inputs: dict[str, dict[str, Any]] = {}   # module -> first call's selected keyword inputs
        self.steps: list[tuple[int, Any, dict[str, torch.Tensor]]] = []   # (i, t, {tensor input: value})
        self.scheduler_calls: list[dict[str, Any]] = []
        self.branches: tuple[str, ...] = ()        # names of a step's denoiser calls, in call order
        self._pending: list[tuple[Any, torch.Tensor]] = []    # this step's (timestep, prediction) calls
        self.step_calls: list[list[tuple[Any, torch.Tensor]]] = []   # per step, once the step ends
        self.decoded: dict[str, torch.Tensor] = {}
        self._undo: list[Callable[[], None]] = []

    # ---- what to record ------------------------------------------------------------
    def wrap(self, method: str, owner: Any = None) -> "OfficialCapture":
        """Record the return value of every call of `owner.method` (default owner: the pipeline)."""
        owner = self.pipe if owner is None else owner
        original = getattr(owner, method)
        record = self.calls.setdefault(method, [])

        @functools.wraps(original)   # the signature stays inspectable (pipelines inspect it)
        def wrapped(*args, **kwargs):
            out = original(*args, **kwargs)
            record.append(_detach(out))
            return out

        setattr(owner, method, wrapped)
        self._undo.append(lambda: owner.__dict__.pop(method, None))
        return self

    def module_inputs(self, module: str, keys: Iterable[str], first_only: bool = True) -> "OfficialCapture":
        """Record selected keyword inputs of `pipe.<module>`'s forward (its first call by default)."""
        keys = tuple(keys)
        seen = self.inputs.setdefault(module, {})

        def hook(_module, args, kwargs):
            for k in keys:
                if k in kwargs and (k not in seen or not first_only):
                    seen[k] = _detach(kwargs[k])

        handle = getattr(self.pipe, module).register_forward_pre_hook(hook, with_kwargs=True)
        self._undo.append(handle.remove)
        return self

    def wrap_scheduler_step(self) -> "OfficialCapture":
        """Record every `scheduler.step(model_output, timestep, sample, ...)`: the guided model
        output and the sample it returned (what a scheduler adapter must reproduce)."""
        scheduler = self.pipe.scheduler
        original = scheduler.step

        # functools.wraps keeps step's signature: pipelines pass `generator`/`eta` only when
        # inspect.signature(scheduler.step) names them (prepare_extra_step_kwargs).
        @functools.wraps(original)
        def step(model_output, timestep, sample, *args, **kwargs):
            out = original(model_output, timestep, sample, *args, **kwargs)
            prev = out[0] if isinstance(out, tuple) else out.prev_sample
            self.scheduler_calls.append({"model_output": _detach(model_output), "timestep": _detach(timestep),
                                         "sample": _detach(sample), "prev_sample": _detach(prev)})
            return out

        scheduler.step = step
        self._undo.append(lambda: scheduler.__dict__.pop("step", None))
        return self

    def denoiser(self, module: str = "transformer",
                 branches: Iterable[str] = ("noise_cond", "noise_uncond")) -> "OfficialCapture":
        """Record every call of `pipe.<module>` within a step: the timestep it receives and its
        prediction, named by `branches` in the official call order (cond first, then uncond,
        for Wan-style loops); needs `step_callback()` to close each step, and
        `wrap_scheduler_step()` for the guided prediction."""
        self.branches = tuple(branches)

        def hook(_module, args, kwargs, output):
            self._pending.append((_detach(model_timestep(args, kwargs)), _detach(first_output(output))))

        handle = getattr(self.pipe, module).register_forward_hook(hook, with_kwargs=True)
        self._undo.append(handle.remove)
        return self

    def decoder(self, vae: Any = None) -> "OfficialCapture":
        """Record the first `vae.decode` call's input (the denormalised latents) and raw output."""
        self._undo.append(watch_decode(self.pipe.vae if vae is None else vae, self.decoded))
        return self

    def _end_step(self) -> None:
        self.step_calls.append(self._pending)
        self._pending = []

    def step_callback(self) -> dict[str, Any]:
        """Keyword arguments for the pipeline call that report every step to this capture."""
        params = inspect.signature(type(self.pipe).__call__).parameters
        if "callback_on_step_end" in params:
            allowed = tuple(getattr(self.pipe, "_callback_tensor_inputs", ("latents",)))
            wanted = [k for k in self.tensor_inputs if k in allowed]

            def on_step_end(pipe, i, t, kwargs):
                self.steps.append((i, _detach(t), {k: _detach(kwargs[k]) for k in wanted if k in kwargs}))
                self._end_step()
                return {}

            return {"callback_on_step_end": on_step_end, "callback_on_step_end_tensor_inputs": wanted}
        if "callback" in params:
            def on_step(i, t, latents):
                self.steps.append((i, _detach(t), {"latents": _detach(latents)}))
                self._end_step()

            return {"callback": on_step, "callback_steps": 1}
        raise TypeError(f"{type(self.pipe).__name__}.__call__ takes neither callback_on_step_end nor callback: "
                        "record the steps with wrap_scheduler_step()")

    # ---- reading it back -----------------------------------------------------------
    def last(self, method: str) -> Any:
        if not self.calls.get(method):
            raise KeyError(f"{type(self.pipe).__name__}.{method} was not called during the run")
        return self.calls[method][-1]

    def standard(self, capture: CaptureSet, *, step_meta: Callable[[int, Any], dict] = lambda i, t: {},
                 initial: str = "prepare_latents", schedule: bool = True) -> CaptureSet:
        """Record the shared checkpoints: timesteps, sigmas, initial_latents, per step (the model's
        timestep, each branch's and the guided prediction when `denoiser()` watched them, then the
        latents), final_latents, and the decoder's input and output when `decoder()` watched it."""
        scheduler = self.pipe.scheduler
        if schedule:
            capture.record("timesteps", scheduler.timesteps, "schedule")
            if getattr(scheduler, "sigmas", None) is not None:
                capture.record("sigmas", scheduler.sigmas, "schedule")
        if initial and self.calls.get(initial):
            first = self.calls[initial][0]
            capture.record("initial_latents", first[0] if isinstance(first, tuple) else first, "latent")
        for i, t, tensors in self.steps:
            meta = {"timestep": float(t), **step_meta(i, t)}
            calls = self.step_calls[i] if self.branches and i < len(self.step_calls) else []
            if calls and calls[0][0] is not None:
                capture.record(step_checkpoint(i, what="timestep_input"), timestep_value(calls[0][0]), "timestep",
                               step=i, meta=meta)
            for what, (_, prediction) in zip(self.branches, calls):
                capture.record(step_checkpoint(i, what=what), prediction, "noise", step=i, meta=meta)
            if self.branches and i < len(self.scheduler_calls):
                capture.record(step_checkpoint(i, what="noise_guided"), self.scheduler_calls[i]["model_output"],
                               "noise", step=i, meta=meta)
            capture.record(step_checkpoint(i), tensors["latents"], "latent", step=i, meta=meta)
        if self.steps:
            capture.record("final_latents", self.steps[-1][2]["latents"], "latent")
        if "decoder_input" in self.decoded:
            capture.record("decoder_input", self.decoded["decoder_input"], "latent")
        if "decoder_output" in self.decoded:
            capture.record("decoder_output", self.decoded["decoder_output"], "decoded")
        return capture

    # ---- context -------------------------------------------------------------------
    def __enter__(self) -> "OfficialCapture":
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()
