"""`SamplingParam`: every public generation argument, in one dataclass.

Precedence when resolving a request: class defaults < family (official) defaults <
preset defaults < explicit request. Unknown keys are an error that lists the nearest
declared names; a preset key that is not a field is refused at registration.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from workbench.errors import ParameterError

_TYPE_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "text"}


@dataclass(frozen=True)
class RequestField:
    """A request field one family declares in its own folder (`params.py`), typed and sourced:
    `RequestField("true_cfg_scale", float, 1.0, "diffusers ... __call__ signature (...)", low=0.0)`.

    The value is checked from its type (a string for a bool, a bool for a number, a fraction
    for an integer and non-finite numbers are refused) and the declared bounds or choices.
    """

    name: str
    type: type
    default: Any
    source: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    optional: bool = True       # None is allowed (and means the default)
    family: str = ""

    def problem(self, value: Any) -> str | None:
        """None when `value` is valid, else what was wrong with it (for one clear line)."""
        if value is None:
            return None if self.optional else "a value (not null)"
        t = self.type
        ok = (isinstance(value, bool) if t is bool else
              isinstance(value, int) and not isinstance(value, bool) if t is int else
              isinstance(value, (int, float)) and not isinstance(value, bool) if t is float else
              isinstance(value, t))
        if not ok:
            return f"{_TYPE_NAMES.get(t, t.__name__)}, got {type(value).__name__} {value!r}"
        if t in (int, float) and not math.isfinite(value):
            return f"a finite number, got {value!r}"
        if self.low is not None and value < self.low:
            return f"at least {self.low}, got {value!r}"
        if self.high is not None and value > self.high:
            return f"at most {self.high}, got {value!r}"
        if self.choices and value not in self.choices:
            return f"one of {', '.join(map(repr, self.choices))}, got {value!r}"
        return None

    def validator(self):
        """The same check as an InputValidationStage rule."""
        from workbench.runtime.validators import Validator

        expected = f"{_TYPE_NAMES.get(self.type, self.type.__name__)} ({self.source})"
        return Validator(expected, lambda v: self.problem(v))


#: name -> RequestField, every family-declared field (filled when a family's config is imported).
FAMILY_FIELDS: dict[str, RequestField] = {}


def declare_fields(family: str, declared) -> tuple[RequestField, ...]:
    """Register a family's request fields. A name may not shadow a shared field; two families may
    declare the same name only with the same type."""
    out = []
    shared = {f.name for f in fields(SamplingParam)}
    for f in declared:
        f = replace(f, family=family) if f.family != family else f
        if f.name in shared:
            raise ParameterError(f"family {family}: request field {f.name!r} is a shared SamplingParam field")
        if f.type not in _TYPE_NAMES:
            raise ParameterError(f"family {family}: request field {f.name!r}: type {f.type!r} is not bool/int/float/str")
        if f.problem(f.default) is not None:
            raise ParameterError(f"family {family}: request field {f.name!r} default: expected {f.problem(f.default)}")
        existing = FAMILY_FIELDS.get(f.name)
        if existing is not None and existing.family != family and existing.type is not f.type:
            raise ParameterError(f"family {family}: request field {f.name!r} is declared by {existing.family} "
                                 f"as {existing.type.__name__}")
        FAMILY_FIELDS.setdefault(f.name, f)
        out.append(f)
    _FAMILY_OWNERS.setdefault(family, set()).update(f.name for f in out)
    return tuple(out)


_FAMILY_OWNERS: dict[str, set[str]] = {}


def family_fields_of(family: str) -> dict[str, RequestField]:
    return {n: FAMILY_FIELDS[n] for n in sorted(_FAMILY_OWNERS.get(family, ()))}


@dataclass(frozen=True)
class SamplingParam:
    prompt: str | list[str] | None = None
    negative_prompt: str | list[str] | None = None
    seed: int = 0
    # video
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None
    fps: int | None = None
    # sampling
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    guidance_scale_2: float | None = None
    boundary_ratio: float | None = None
    flow_shift: float | None = None
    max_sequence_length: int | None = None
    # image conditioning (path or PIL image)
    image: Any = None
    # audio
    audio_start_in_s: float | None = None
    audio_end_in_s: float | None = None
    sampling_rate: int | None = None
    channels: int | None = None
    # joint audio-video guidance and timing (LTX-2; names as in LTX2Pipeline.__call__)
    frame_rate: float | None = None
    motion_speed: float | None = None
    stg_scale: float | None = None
    modality_scale: float | None = None
    guidance_rescale: float | None = None
    audio_guidance_scale: float | None = None
    audio_stg_scale: float | None = None
    audio_modality_scale: float | None = None
    audio_guidance_rescale: float | None = None
    spatio_temporal_guidance_blocks: list[int] | None = None
    use_cross_timestep: bool | None = None
    # output
    output_type: str = "tensor"
    stage_overrides: tuple[tuple[str, str, Any], ...] = field(default=())

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def check_keys(cls, keys, where: str, family: str | None = None) -> None:
        """Shared fields, plus `family`'s declared ones (any family's when None)."""
        declared = sorted(_FAMILY_OWNERS.get(family, ())) if family is not None else sorted(FAMILY_FIELDS)
        names = cls.field_names() + declared
        for key in keys:
            if key in names:
                continue
            if key in FAMILY_FIELDS:
                raise ParameterError(f"{where}: parameter {key!r} is declared by family "
                                     f"{FAMILY_FIELDS[key].family}, not {family}")
            near = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(near)}?" if near else f"; declared fields: {', '.join(names)}"
            raise ParameterError(f"{where}: unknown parameter {key!r}{hint}")

    @classmethod
    def resolve(cls, *layers: Mapping[str, Any], where: tuple[str, ...] = (),
                family: str | None = None) -> "SamplingParam":
        """Merge layers left to right (later wins) over the class defaults; family-declared
        fields (`family`'s, or any family's when None) are type-checked and kept aside."""
        merged: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for i, layer in enumerate(layers):
            label = where[i] if i < len(where) else f"layer {i}"
            cls.check_keys(layer.keys(), label, family)
            for key, value in layer.items():
                if key in FAMILY_FIELDS:
                    problem = FAMILY_FIELDS[key].problem(value)
                    if problem is not None:
                        raise ParameterError(f"{label}: {key}: expected {problem} ({FAMILY_FIELDS[key].source})")
                    extra[key] = value
                else:
                    merged[key] = value
        if "stage_overrides" in merged:
            merged["stage_overrides"] = tuple(tuple(o) for o in merged["stage_overrides"])
        out = cls(**merged)
        if family is not None:  # the family's declared defaults, under what was given
            extra = {**{n: f.default for n, f in family_fields_of(family).items()}, **extra}
        object.__setattr__(out, "_family_values", dict(sorted(extra.items())))
        return out

    @property
    def family_values(self) -> dict[str, Any]:
        """The family-declared fields of this request (name -> value)."""
        return dict(self.__dict__.get("_family_values", {}))

    def __getattr__(self, name: str) -> Any:
        if name in FAMILY_FIELDS:
            values = self.__dict__.get("_family_values", {})
            return values.get(name, FAMILY_FIELDS[name].default)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def replace(self, **changes: Any) -> "SamplingParam":
        self.check_keys(changes.keys(), "request")
        extra = self.family_values
        for key in [k for k in changes if k in FAMILY_FIELDS]:
            value = changes.pop(key)
            problem = FAMILY_FIELDS[key].problem(value)
            if problem is not None:
                raise ParameterError(f"request: {key}: expected {problem} ({FAMILY_FIELDS[key].source})")
            extra[key] = value
        out = replace(self, **changes)
        object.__setattr__(out, "_family_values", dict(sorted(extra.items())))
        return out

    def to_batch(self):
        from workbench.runtime.batch import ForwardBatch

        values = {k: v for k, v in asdict(self).items() if k != "stage_overrides"}
        batch = ForwardBatch(**values)
        batch.family_values = self.family_values
        return batch

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-safe view for verdicts and fingerprints: a PIL image becomes a stable description
        (mode, size, pixel hash), any other object its repr."""
        from PIL import Image

        from workbench.media import describe_image

        out = {}
        for k, v in asdict(self).items():
            try:
                out[k] = json.loads(json.dumps(v))  # tuples become lists, as in a JSON file
            except TypeError:
                out[k] = describe_image(v) if isinstance(v, Image.Image) else repr(v)
        out.update(self.family_values)   # family-declared fields (none for most families)
        return out


TEXT_FIELDS = frozenset({"prompt", "negative_prompt", "image", "output_type"})


def parse_value(text: str, key: str = "") -> Any:
    """Parse a `--set` value: text fields stay text; others are JSON when they parse."""
    if key in TEXT_FIELDS:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """`["a=1", "prompt=a cat"]` -> {"a": 1, "prompt": "a cat"}; names checked against fields."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = parse_value(value, key.strip())
    SamplingParam.check_keys(out.keys(), flag)
    return out
