"""`SamplingParam`: every public generation argument, in one dataclass.

Precedence when resolving a request: class defaults < family (official) defaults <
preset defaults < explicit request. Unknown keys are an error that lists the nearest
declared names; a preset key that is not a field is refused at registration.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from workbench.errors import ParameterError


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
    def check_keys(cls, keys, where: str) -> None:
        names = cls.field_names()
        for key in keys:
            if key not in names:
                near = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(near)}?" if near else f"; declared fields: {', '.join(names)}"
                raise ParameterError(f"{where}: unknown parameter {key!r}{hint}")

    @classmethod
    def resolve(cls, *layers: Mapping[str, Any], where: tuple[str, ...] = ()) -> "SamplingParam":
        """Merge layers left to right (later wins) over the class defaults."""
        merged: dict[str, Any] = {}
        for i, layer in enumerate(layers):
            cls.check_keys(layer.keys(), where[i] if i < len(where) else f"layer {i}")
            merged.update(layer)
        if "stage_overrides" in merged:
            merged["stage_overrides"] = tuple(tuple(o) for o in merged["stage_overrides"])
        return cls(**merged)

    def replace(self, **changes: Any) -> "SamplingParam":
        self.check_keys(changes.keys(), "request")
        return replace(self, **changes)

    def to_batch(self):
        from workbench.runtime.batch import ForwardBatch

        values = {k: v for k, v in asdict(self).items() if k != "stage_overrides"}
        return ForwardBatch(**values)

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
