"""Probes: a fixed seeded input for a component and the call whose outputs are compared.

`inputs(official_module, ctx)` builds the input once (from the official module's config);
`run(module, inputs)` is called on both sides with copies of it. Generic probes cover
tokenizers, schedulers, image processors and transformers text and image encoders;
classes no generic probe can drive
(DiTs, VAEs) get a probe in their family folder's `component_probes.py`
(`PROBES = {"ClassName": Probe(...)}`), kept tiny.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

# Fixed prompts: plain, punctuation and HTML entities, non-ASCII, and one longer than the
# probe length so truncation is exercised.
PROMPTS = (
    "a cat walking in the rain, cinematic",
    "fish &amp; chips on a table -- low quality, blurred details",
    "Ünïcödé prompt with émojis 🐱 and\ttabs",
    " ".join(["a long prompt that runs past the probe length"] * 8),
)
PROBE_LENGTH = 24


@dataclass(frozen=True)
class ProbeContext:
    official_dir: Path   # the official model directory (siblings such as the tokenizer load from here)
    name: str            # the module being probed
    seed: int = 0

    def generator(self) -> torch.Generator:
        return torch.Generator("cpu").manual_seed(self.seed)

    def sibling(self, prefix: str, stem: str) -> Any | None:
        """The official module paired with this one by name (text_encoder_2 -> tokenizer_2)."""
        from workbench.portstate.components import load_official
        from workbench.runtime.manifest import read_manifest

        name = self.name.replace(stem, prefix, 1)
        spec = read_manifest(self.official_dir).modules.get(name)
        return None if spec is None or spec.disabled else load_official(self.official_dir, spec)


@dataclass(frozen=True)
class Probe:
    name: str
    inputs: Callable[[Any, ProbeContext], dict[str, Any]]
    run: Callable[[Any, dict[str, Any]], dict[str, torch.Tensor]]


# ---- tokenizer ------------------------------------------------------------------------

def _tokenizer_inputs(tokenizer, ctx: ProbeContext) -> dict[str, Any]:
    return {"prompts": list(PROMPTS), "max_length": min(PROBE_LENGTH, int(tokenizer.model_max_length))}


def _tokenizer_run(tokenizer, inputs) -> dict[str, torch.Tensor]:
    enc = tokenizer(inputs["prompts"], padding="max_length", max_length=inputs["max_length"], truncation=True,
                    return_attention_mask=True, return_tensors="pt")
    return {k: v for k, v in enc.items() if isinstance(v, torch.Tensor)}


TOKENIZER = Probe("tokenizer: fixed prompts -> ids and mask", _tokenizer_inputs, _tokenizer_run)


# ---- scheduler ------------------------------------------------------------------------

def _scheduler_inputs(scheduler, ctx: ProbeContext) -> dict[str, Any]:
    g = ctx.generator()
    sample = torch.randn(1, 4, 2, 4, 4, generator=g)
    return {"steps": 4, "sample": sample, "model_outputs": [torch.randn(sample.shape, generator=g) for _ in range(2)],
            "seed": ctx.seed}


def _scheduler_run(scheduler, inputs) -> dict[str, torch.Tensor]:
    kwargs = {}
    if "mu" in inspect.signature(scheduler.set_timesteps).parameters and scheduler.config.get("use_dynamic_shifting"):
        kwargs["mu"] = 1.0
    scheduler.set_timesteps(inputs["steps"], **kwargs)
    out = {"timesteps": scheduler.timesteps.clone()}
    if isinstance(getattr(scheduler, "sigmas", None), torch.Tensor):
        out["sigmas"] = scheduler.sigmas.clone()
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    sample = inputs["sample"]
    for i, (t, model_output) in enumerate(zip(scheduler.timesteps, inputs["model_outputs"])):
        extra = {"generator": torch.Generator("cpu").manual_seed(inputs["seed"] + i)} if takes_generator else {}
        if hasattr(scheduler, "scale_model_input"):
            sample = scheduler.scale_model_input(sample, t)
        try:
            sample = scheduler.step(model_output, t, sample, return_dict=False, **extra)[0]
        except TypeError as exc:   # a step signature the generic probe does not drive
            name = type(scheduler).__name__
            raise TypeError(f"no generic probe fits {name} (scheduler.step{inspect.signature(scheduler.step)}: "
                            f"{exc}): add one to the family's component_probes.py PROBES[{name!r}]") from None
        out[f"step_{i}_prev_sample"] = sample
    return out


SCHEDULER = Probe("scheduler: set_timesteps(4) + two steps on seeded tensors", _scheduler_inputs, _scheduler_run)


# ---- transformers text encoder ----------------------------------------------------------

def _text_encoder_inputs(model, ctx: ProbeContext) -> dict[str, Any]:
    tokenizer = ctx.sibling("tokenizer", "text_encoder")
    if tokenizer is not None:
        enc = _tokenizer_run(tokenizer, _tokenizer_inputs(tokenizer, ctx))
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "output_hidden_states": True}
    ids = torch.randint(0, model.config.vocab_size, (len(PROMPTS), PROBE_LENGTH), generator=ctx.generator())
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "output_hidden_states": True}


def tensor_outputs(out) -> dict[str, torch.Tensor]:
    """A model output's tensors by name; tuples of tensors (hidden_states) as name_0, name_1, ..."""
    flat = {}
    for key, value in out.items():
        if isinstance(value, torch.Tensor):
            flat[key] = value
        elif isinstance(value, tuple):
            flat.update({f"{key}_{i}": v for i, v in enumerate(value) if isinstance(v, torch.Tensor)})
    return flat


def _text_encoder_run(model, inputs) -> dict[str, torch.Tensor]:
    return tensor_outputs(model(**inputs))


TEXT_ENCODER = Probe("text encoder: tokenizer ids of fixed prompts -> every hidden state", _text_encoder_inputs,
                     _text_encoder_run)


# ---- image processor and transformers image encoder -------------------------------------

def _image_processor_inputs(processor, ctx: ProbeContext) -> dict[str, Any]:
    """Two seeded RGB images of odd sizes, so resizing and cropping both run."""
    from PIL import Image

    g = ctx.generator()
    images = [torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy() for h, w in ((40, 57), (23, 31))]
    return {"images": [Image.fromarray(a) for a in images]}


def _image_processor_run(processor, inputs) -> dict[str, torch.Tensor]:
    out = processor(images=inputs["images"], return_tensors="pt")
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


IMAGE_PROCESSOR = Probe("image processor: two seeded images -> pixel values", _image_processor_inputs,
                        _image_processor_run)


def _image_encoder_inputs(model, ctx: ProbeContext) -> dict[str, Any]:
    cfg = model.config
    return {"pixel_values": torch.randn(2, cfg.num_channels, cfg.image_size, cfg.image_size, generator=ctx.generator()),
            "output_hidden_states": True}


IMAGE_ENCODER = Probe("image encoder: seeded pixel values -> every hidden state", _image_encoder_inputs,
                      _text_encoder_run)


# ---- lookup ---------------------------------------------------------------------------

def family_probes(folder_package: str) -> dict[str, Probe]:
    """`PROBES` of the family folder's `component_probes.py`, if it has one."""
    name = f"{folder_package}.component_probes"
    if importlib.util.find_spec(name) is None:
        return {}
    return dict(importlib.import_module(name).PROBES)


def probe_for(folder_package: str, component_type: str, module: Any) -> Probe | None:
    """The family folder's probe for the class, else a generic one for the component type."""
    specific = family_probes(folder_package).get(type(module).__name__)
    if specific is not None:
        return specific
    if component_type == "tokenizer" and callable(module):
        return TOKENIZER
    if component_type == "scheduler" and hasattr(module, "set_timesteps"):
        return SCHEDULER
    if component_type in ("image_processor", "feature_extractor") and callable(module):
        return IMAGE_PROCESSOR
    from transformers import PreTrainedModel

    if component_type == "text_encoder" and isinstance(module, PreTrainedModel):
        return TEXT_ENCODER
    if component_type == "image_encoder" and isinstance(module, PreTrainedModel):
        return IMAGE_ENCODER
    return None
