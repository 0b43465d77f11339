"""The standard stages every family composes.

Each stage holds the control flow that is the same across families and takes the part
that differs as a small callable (a protocol below). A family writes its own stage only
when these cannot express the official behaviour.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import torch
from tqdm.auto import tqdm

from workbench.runtime import validators as V
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.hooks import PipelineHooks
from workbench.errors import ParameterError, StageVerificationError
from workbench.runtime.stage import Stage
from workbench.trace.context import set_step

_NO_HOOKS = PipelineHooks()


# ---- capture points shared by the native loops and the official runners -----------------
def model_timestep(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The timestep a denoiser call receives: the `timestep` keyword, else the second positional
    argument (Stable Audio's DiT: `transformer(latents, t, ...)`)."""
    value = kwargs.get("timestep", args[1] if len(args) > 1 else None)
    return value if isinstance(value, torch.Tensor) else None


def timestep_value(timestep: torch.Tensor) -> torch.Tensor:
    """The recorded form of a call's timestep: its first sample (a batched call repeats it), with
    its dtype, so a cast the model sees is a difference parity sees."""
    return timestep[:1] if timestep.ndim else timestep


def first_output(output: Any) -> torch.Tensor | None:
    """The tensor a module or decode call returns: itself, element 0 of a tuple, or `.sample`."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    sample = getattr(output, "sample", None)
    return sample if isinstance(sample, torch.Tensor) else None


class TimestepProbe:
    """Records the timestep of the first denoiser call in each step (forward pre-hooks on the
    denoisers); `take()` returns it and arms the probe for the next step."""

    def __init__(self, models: list[torch.nn.Module]):
        self.value: torch.Tensor | None = None
        self._handles = []
        for model in {id(m): m for m in models}.values():
            if isinstance(model, torch.nn.Module):
                self._handles.append(model.register_forward_pre_hook(self._record, with_kwargs=True))

    def _record(self, _module, args, kwargs):
        if self.value is None:
            timestep = model_timestep(args, kwargs)
            if timestep is not None:
                self.value = timestep_value(timestep).detach()

    def take(self) -> torch.Tensor | None:
        value, self.value = self.value, None
        return value

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def watch_decode(decoder: Any, seen: dict, prefix: str = "", method: str = "decode"):
    """Wrap `decoder.<method>` (instance attribute, removed by the returned undo) so its first call's
    input (`<prefix>decoder_input`) and raw output (`<prefix>decoder_output`) land in `seen`."""
    original = getattr(decoder, method)
    shadowed = vars(decoder).get(method)  # an instance attribute already there (another wrapper)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        latents = args[0] if args else next(iter(kwargs.values()))
        seen.setdefault(f"{prefix}decoder_input", latents)
        raw = first_output(out)
        if raw is not None:
            seen.setdefault(f"{prefix}decoder_output", raw)
        return out

    setattr(decoder, method, wrapped)

    def undo():
        if shadowed is not None:
            setattr(decoder, method, shadowed)  # the wrapper beneath stays in place
            return
        try:
            delattr(decoder, method)
        except AttributeError:
            pass

    return undo


class PromptEncoder(Protocol):
    """prompts -> (embeddings [B, L, D], attention mask [B, L] or None)."""

    def __call__(self, prompts: list[str], batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class NoisePredictor(Protocol):
    """One transformer call. `branch` is 'cond', 'uncond' or 'both' (batched CFG: [uncond, cond])."""

    def __call__(self, model: torch.nn.Module, latents: torch.Tensor, timestep: torch.Tensor,
                 batch: ForwardBatch, branch: str) -> torch.Tensor: ...


CrossCheck = Callable[[ForwardBatch], "tuple[str, str, str] | None"]


class InputValidationStage(Stage):
    """Checks the request against the family's rules, loads its media inputs, then seeds the CPU generator.

    `rules` check single fields; `cross_checks` return (field, expected, got) when a
    combination of fields is invalid; `model_defaults` fill fields the request left None
    from the loaded model (e.g. Wan 2.2's `boundary_ratio` from its manifest); `loaders`
    turn a field into its working form (an image path into an RGB image), so a bad file
    fails here, before any model runs.
    """

    def __init__(self, rules: dict[str, V.Validator], cross_checks: tuple[CrossCheck, ...] = (),
                 model_defaults: Callable[[], dict[str, Any]] = dict,
                 cfg_enabled: Callable[[ForwardBatch], bool] = lambda b: (b.guidance_scale or 0.0) > 1.0,
                 loaders: dict[str, Callable[[Any], Any]] | None = None):
        self.rules = rules
        self.cross_checks = cross_checks
        self.model_defaults = model_defaults
        self.cfg_enabled = cfg_enabled
        self.loaders = dict(loaders or {})

    def input_checks(self, batch):
        return self.rules

    def forward(self, batch):
        for key, value in self.model_defaults().items():
            if getattr(batch, key) is None:
                setattr(batch, key, value)
        for check in self.cross_checks:
            problem = check(batch)
            if problem is not None:
                raise StageVerificationError(self.name, *problem)
        for key, load in self.loaders.items():
            setattr(batch, key, load(getattr(batch, key)))
        # Parity needs the official noise: a CPU generator seeded from the request.
        batch.generator = torch.Generator("cpu").manual_seed(int(batch.seed))
        batch.do_classifier_free_guidance = bool(self.cfg_enabled(batch))
        return batch


class TextEncodingStage(Stage):
    """Encodes the prompt, and the negative prompt when guidance needs it.

    Without a negative prompt, guidance encodes `default_negative`; `default_negative=None`
    encodes nothing and leaves the unconditional branch to the family (Stable Audio zeros it).
    """

    def __init__(self, encode: PromptEncoder, default_negative: str | None = ""):
        self.encode = encode
        self.default_negative = default_negative

    def negative(self, batch: ForwardBatch) -> str | list[str] | None:
        """The negative prompt to encode, or None when guidance is off or there is none."""
        if not batch.do_classifier_free_guidance:
            return None
        return batch.negative_prompt if batch.negative_prompt is not None else self.default_negative

    def input_checks(self, batch):
        return {"prompt": V.text_prompt(), "negative_prompt": V.optional_text()}

    def output_checks(self, batch):
        checks = {"prompt_embeds": V.tensor(3)}
        if self.negative(batch) is not None:
            checks["negative_prompt_embeds"] = V.tensor(3)
        return checks

    def forward(self, batch):
        with torch.no_grad():
            batch.prompt_embeds, batch.prompt_attention_mask = self.encode(batch.prompts, batch)
            negative = self.negative(batch)
            if negative is not None:
                negatives = [negative] * batch.batch_size if isinstance(negative, str) else list(negative)
                if len(negatives) != batch.batch_size:
                    raise ParameterError(
                        f"negative_prompt has {len(negatives)} entries but prompt has {batch.batch_size}")
                batch.negative_prompt_embeds, batch.negative_prompt_attention_mask = self.encode(negatives, batch)
        return batch


class ConditioningStage(Stage):
    """Puts the text conditioning in the denoiser's dtype (the official pipelines cast here).

    Captured here, after the cast, because that is what the denoiser sees on both sides.
    """

    captures = {
        "prompt_embeds": ("prompt_embeds", "embedding"),
        "negative_prompt_embeds": ("negative_prompt_embeds", "embedding"),
    }

    def __init__(self, dtype_of: Callable[[], torch.dtype]):
        self.dtype_of = dtype_of

    def forward(self, batch):
        dtype = self.dtype_of()
        batch.prompt_embeds = batch.prompt_embeds.to(dtype)
        if batch.negative_prompt_embeds is not None:
            batch.negative_prompt_embeds = batch.negative_prompt_embeds.to(dtype)
        return batch


class TimestepPreparationStage(Stage):
    """Sets this run's scheduler and timesteps.

    The run gets its own scheduler on `batch.scheduler`: the loaded one, or a copy
    re-configured with the requested `flow_shift` (the official recipe:
    `Scheduler.from_config(config, flow_shift=...)`), so one run never leaks into the next.
    `set_timesteps_kwargs` adds what a family passes to `set_timesteps` (e.g. LTX-2's
    `sigmas` and the dynamic-shift `mu` computed from the latent sequence length).
    """

    captures = {"timesteps": ("timesteps", "schedule"), "sigmas": ("sigmas", "schedule")}

    def __init__(self, base_scheduler: Callable[[], Any],
                 set_timesteps_kwargs: Callable[[ForwardBatch], dict] = lambda b: {}):
        self.base_scheduler = base_scheduler
        self.set_timesteps_kwargs = set_timesteps_kwargs

    def input_checks(self, batch):
        return {"num_inference_steps": V.positive_int(), "flow_shift": V.number_in(0.0, None, optional=True)}

    def output_checks(self, batch):
        return {"timesteps": V.tensor(1)}

    def forward(self, batch):
        scheduler = self.base_scheduler()
        shift = batch.flow_shift
        if shift is not None and "flow_shift" in scheduler.config and scheduler.config.flow_shift != shift:
            scheduler = type(scheduler).from_config(scheduler.config, flow_shift=shift)
        scheduler.set_timesteps(batch.num_inference_steps, device=batch.device, **self.set_timesteps_kwargs(batch))
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(0)
        batch.scheduler = scheduler
        batch.timesteps = scheduler.timesteps
        batch.sigmas = getattr(scheduler, "sigmas", None)
        return batch


class LatentPreparationStage(Stage):
    """Draws the initial noise from the request's CPU generator (the official recipe).

    `dtype_of` gives the dtype the official pipeline draws in (Wan: always float32; Stable
    Audio: its conditioning's dtype, which differs in fp16 fast mode). A joint family draws
    one stream after another from the same generator: a named `stream` (e.g. "audio") keeps
    its latents in `batch.extra["<stream>_latents"]` and is captured as `<stream>_initial_latents`.
    """

    captures = {"initial_latents": ("initial_latents", "latent")}

    def __init__(self, shape_of: Callable[[ForwardBatch], tuple[int, ...]],
                 init_noise_sigma: Callable[[], float] | None = None,
                 dtype_of: Callable[[ForwardBatch], torch.dtype] = lambda b: torch.float32, stream: str = ""):
        self.shape_of = shape_of
        self.init_noise_sigma = init_noise_sigma
        self.dtype_of = dtype_of
        self.stream = stream
        if stream:
            self.captures = {f"{stream}_initial_latents": (f"{stream}_initial_latents", "latent")}

    @property
    def name(self) -> str:
        return self.stream.capitalize() + type(self).__name__

    def output_checks(self, batch):
        return {f"{self.stream}_latents" if self.stream else "latents": V.tensor()}

    def forward(self, batch):
        shape = self.shape_of(batch)
        latents = torch.randn(shape, generator=batch.generator, device="cpu", dtype=self.dtype_of(batch))
        latents = latents.to(batch.device)
        if self.init_noise_sigma is not None:
            latents = latents * self.init_noise_sigma()
        if self.stream:
            batch.extra[f"{self.stream}_initial_latents"] = latents
            batch.extra[f"{self.stream}_latents"] = latents
        else:
            batch.initial_latents = latents
            batch.latents = latents
        return batch


@dataclass
class Expert:
    """A denoiser and the guidance scale field it uses."""

    name: str
    model: torch.nn.Module
    guidance_field: str = "guidance_scale"


class StepHookedStage(Stage):
    """A stage whose loop reports each step (`self.step_hooks.on_step_end`): the run's hooks
    are held for the duration of one call, so capture and trace see every step."""

    step_hooks: PipelineHooks = _NO_HOOKS

    def __call__(self, batch, hooks=_NO_HOOKS):
        self.step_hooks = hooks
        try:
            return super().__call__(batch, hooks)
        finally:
            self.step_hooks = _NO_HOOKS


class DenoisingStage(StepHookedStage):
    """The sampling loop: classifier-free guidance, an optional second expert, a scheduler step.

    `cfg="sequential"` calls the model twice per step (cond, then uncond) as Wan does;
    `cfg="batched"` calls it once on [uncond, cond] as Stable Audio does. With a second
    expert and `batch.boundary_ratio`, the first expert runs while t >= boundary.
    `scale_input=True` passes the model input through `scheduler.scale_model_input` first,
    for official pipelines that call it (EDM-style schedulers scale by c_in(sigma));
    `step_kwargs` adds per-request arguments to `scheduler.step` (e.g. the generator).

    Each step reports to the hooks (`info["tensors"]`, name -> (tensor, kind)) the timestep the
    model received (`timestep_input`), every guidance branch's prediction (`noise_cond`,
    `noise_uncond`) and the guided prediction handed to the scheduler (`noise_guided`).

    Declared hooks, so a family configures the loop instead of copying it (all optional):
    - `guidance_scale(i, t, batch, expert) -> float`: the scale at step i (a schedule, a
      dynamic CFG); default: the expert's guidance field.
    - `scheduler_step(scheduler, noise, t, latents, batch, state) -> latents`: the update, for
      schedulers that need extra state (previous x0 prediction, previous timestep); `state` is
      one dict per run. Default: `scheduler.step(noise, t, latents, **step_kwargs)`.
    - `input_order`: "scale_then_branch" (scale_model_input, then the [uncond, cond] concat)
      or "branch_then_scale" (concat first, as some official loops do).
    - `guidance_dtype` + `cast`: the dtype predictions are cast to, "before_guidance" (each
      branch) or "after_guidance" (the guided result); None keeps the model's dtype.
    - `post_step(latents, i, t, batch) -> latents`: after the update (a cast, a mask blend).
    """

    captures = {"latents": ("final_latents", "latent")}

    def __init__(self, predict: NoisePredictor, experts: Callable[[], list[Expert]],
                 cfg: Literal["sequential", "batched"] = "sequential",
                 step_kwargs: Callable[[ForwardBatch], dict] = lambda b: {}, progress: bool = True,
                 scale_input: bool = False,
                 guidance_scale: Callable[[int, torch.Tensor, ForwardBatch, Expert], float] | None = None,
                 scheduler_step: Callable[..., torch.Tensor] | None = None,
                 input_order: Literal["scale_then_branch", "branch_then_scale"] = "scale_then_branch",
                 guidance_dtype: torch.dtype | None = None,
                 cast: Literal["before_guidance", "after_guidance"] = "after_guidance",
                 post_step: Callable[[torch.Tensor, int, torch.Tensor, ForwardBatch], torch.Tensor] | None = None):
        if input_order not in ("scale_then_branch", "branch_then_scale"):
            raise ValueError(f"input_order {input_order!r}: expected scale_then_branch or branch_then_scale")
        if cast not in ("before_guidance", "after_guidance"):
            raise ValueError(f"cast {cast!r}: expected before_guidance or after_guidance")
        self.predict = predict
        self.experts = experts
        self.cfg = cfg
        self.step_kwargs = step_kwargs
        self.progress = progress
        self.scale_input = scale_input
        self.guidance_scale = guidance_scale
        self.scheduler_step = scheduler_step
        self.input_order = input_order
        self.guidance_dtype = guidance_dtype
        self.cast = cast
        self.post_step = post_step

    # ---- the declared hooks' defaults ------------------------------------------------
    def scale_for(self, i: int, t: torch.Tensor, batch: ForwardBatch, expert: Expert) -> float:
        if self.guidance_scale is not None:
            return self.guidance_scale(i, t, batch, expert)
        scale = getattr(batch, expert.guidance_field)
        return batch.guidance_scale if scale is None else scale

    def update(self, scheduler, noise, t, latents, batch, kwargs: dict, state: dict) -> torch.Tensor:
        if self.scheduler_step is not None:
            return self.scheduler_step(scheduler, noise, t, latents, batch, state)
        return scheduler.step(noise, t, latents, **kwargs, return_dict=False)[0]

    def _cast(self, noise: torch.Tensor, where: str) -> torch.Tensor:
        return noise.to(self.guidance_dtype) if self.guidance_dtype is not None and self.cast == where else noise

    def input_checks(self, batch):
        return {"latents": V.tensor(), "timesteps": V.tensor(1)}

    def output_checks(self, batch):
        return {"latents": V.tensor()}

    def expert_for(self, t: torch.Tensor, batch: ForwardBatch, num_train_timesteps: int) -> Expert:
        experts = self.experts()
        if len(experts) < 2 or batch.boundary_ratio is None:
            return experts[0]
        boundary = batch.boundary_ratio * num_train_timesteps
        return experts[0] if t >= boundary else experts[1]

    def guided(self, model, latents, t, batch, scale, predictions: dict | None = None):
        """The guided prediction; `predictions` (when given) receives each branch's (after the
        branch cast)."""
        predictions = {} if predictions is None else predictions
        scale_first = self.input_order == "scale_then_branch"
        if self.scale_input and (scale_first or not batch.do_classifier_free_guidance or self.cfg != "batched"):
            latents = batch.scheduler.scale_model_input(latents, t)
        if not batch.do_classifier_free_guidance:
            predictions["noise_cond"] = self._cast(self.predict(model, latents, t, batch, "cond"), "before_guidance")
            return self._cast(predictions["noise_cond"], "after_guidance")
        if self.cfg == "batched":
            both = torch.cat([latents] * 2)
            if self.scale_input and not scale_first:
                both = batch.scheduler.scale_model_input(both, t)
            noise_uncond, noise_cond = self.predict(model, both, t, batch, "both").chunk(2)
        else:
            noise_cond = self.predict(model, latents, t, batch, "cond")
            noise_uncond = self.predict(model, latents, t, batch, "uncond")
        noise_uncond, noise_cond = self._cast(noise_uncond, "before_guidance"), self._cast(noise_cond, "before_guidance")
        predictions["noise_cond"], predictions["noise_uncond"] = noise_cond, noise_uncond
        return self._cast(noise_uncond + scale * (noise_cond - noise_uncond), "after_guidance")

    def forward(self, batch):
        scheduler = batch.scheduler
        latents = batch.latents
        kwargs = self.step_kwargs(batch)
        num_train = scheduler.config.num_train_timesteps
        # Experts are chosen before the loop from one host copy of the timesteps: comparing a
        # device timestep with the boundary inside the loop would sync the host every step.
        plan = [self.expert_for(t, batch, num_train) for t in batch.timesteps.cpu()]
        # The timestep probe hooks the denoisers only while someone observes the steps.
        probe = TimestepProbe([e.model for e in plan]) if self.step_hooks is not _NO_HOOKS else None
        state: dict = {}   # the scheduler adapter's per-run state
        try:
            with torch.no_grad():
                for i, t in enumerate(tqdm(batch.timesteps, desc="denoising", disable=not self.progress,
                                           leave=False)):
                    set_step(i)
                    expert = plan[i]
                    scale = self.scale_for(i, t, batch, expert)
                    predictions: dict = {}
                    noise = self.guided(expert.model, latents, t, batch, scale, predictions)
                    latents = self.update(scheduler, noise, t, latents, batch, kwargs, state)
                    if self.post_step is not None:
                        latents = self.post_step(latents, i, t, batch)
                    batch.latents = latents
                    timestep = probe.take() if probe is not None else None
                    tensors = {"timestep_input": (timestep, "timestep")} if timestep is not None else {}
                    tensors.update({name: (value, "noise") for name, value in predictions.items()})
                    tensors["noise_guided"] = (noise, "noise")
                    self.step_hooks.on_step_end(i, t, batch, {"expert": expert.name, "guidance_scale": float(scale),
                                                              "tensors": tensors})
                set_step(None)
        finally:
            if probe is not None:
                probe.close()
        return batch


class DecodingStage(Stage):
    """Latents -> media (frames [B, F, H, W, 3] in [0, 1], or waveform [B, C, T]).

    With `decoder` (the VAE), its `decode` call is watched: what it receives (the denormalised
    latents, `decoder_input`) and what it returns before postprocessing and clamping
    (`decoder_output`) are captured ahead of the media.
    """

    def __init__(self, decode: Callable[[torch.Tensor, ForwardBatch], torch.Tensor], kind: str = "frames",
                 decoder: Callable[[], Any] | None = None):
        self.decode = decode
        self.kind = kind
        self.decoder = decoder
        self.captures = ({"decoder_input": ("decoder_input", "latent"),
                          "decoder_output": ("decoder_output", "decoded")} if decoder is not None else {})
        self.captures["output"] = (kind, kind)

    def input_checks(self, batch):
        return {"latents": V.tensor()}

    def output_checks(self, batch):
        return {"output": V.tensor()}

    def __call__(self, batch, hooks=_NO_HOOKS):
        self._observed = hooks is not _NO_HOOKS  # the decoder is watched only for an observer
        return super().__call__(batch, hooks)

    def forward(self, batch):
        observed = self.decoder is not None and getattr(self, "_observed", False)
        undo = watch_decode(self.decoder(), batch.extra) if observed else None
        try:
            with torch.no_grad():
                batch.output = self.decode(batch.latents, batch)
        finally:
            if undo is not None:
                undo()
        return batch


class ImageEncodingStage(Stage):
    """Conditioning image -> image-encoder embeddings (image-to-video)."""

    captures = {"image_embeds": ("image_embeds", "embedding")}

    def __init__(self, encode: Callable[[ForwardBatch], torch.Tensor]):
        self.encode = encode

    def input_checks(self, batch):
        return {"image": V.not_none()}

    def output_checks(self, batch):
        return {"image_embeds": V.tensor()}

    def forward(self, batch):
        with torch.no_grad():
            batch.image_embeds = self.encode(batch)
        return batch


class ImageVAEEncodingStage(Stage):
    """Conditioning image -> VAE latent condition (image-to-video)."""

    captures = {"image_latents": ("image_latents", "latent")}

    def __init__(self, encode: Callable[[ForwardBatch], torch.Tensor]):
        self.encode = encode

    def input_checks(self, batch):
        return {"image": V.not_none(), "latents": V.tensor()}

    def output_checks(self, batch):
        return {"image_latents": V.tensor()}

    def forward(self, batch):
        with torch.no_grad():
            batch.image_latents = self.encode(batch)
        return batch


class PositionalTableStage(Stage):
    """Per-request positional tables (RoPE grids, rotary frequencies) computed once, before the
    loop, into `batch.extra[key]`: `table(batch)` returns the tensor or tuple of tensors.
    Captured (as an "embedding" checkpoint named `key`) when `capture=True` (a single tensor)."""

    def __init__(self, table: Callable[[ForwardBatch], Any], key: str = "rotary_embedding", capture: bool = False):
        self.table = table
        self.key = key
        self.capture = capture
        if capture:
            self.captures = {key: (key, "embedding")}

    @property
    def name(self) -> str:
        return f"PositionalTableStage[{self.key}]"

    def output_checks(self, batch):
        return {}

    def forward(self, batch):
        with torch.no_grad():
            value = self.table(batch)
        batch.extra[self.key] = value
        return batch
