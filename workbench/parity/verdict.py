"""The verdict of one parity run: what was compared, under which tolerances, and where it broke.

One JSON file per run (DESIGN section 6); notebooks render it and tests assert on it.
Checkpoints are kept in pipeline order, so the first failing one is the first divergence.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from workbench.errors import ParityError
from workbench.io import atomic_write_text
from workbench.parity.metrics import Metrics
from workbench.parity.tolerances import Tolerance


@dataclass
class CheckpointResult:
    """One checkpoint compared; a side's meta is None when that side did not record it."""

    name: str
    kind: str
    step: int | None
    passed: bool
    reason: str = ""
    hint: str = ""
    metrics: Metrics | None = None
    tolerance: Tolerance | None = None
    reference_meta: dict[str, Any] | None = None
    native_meta: dict[str, Any] | None = None
    # issue 16 calibration: the measured noise floor (max abs diff of the reference against
    # itself under the mode's legitimate changes), the multiple k the bound allows, and where
    # the tolerance came from: "calibrated" or "fixed ...: <why>".
    floor: float | None = None
    k: float | None = None
    tolerance_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["metrics"] = self.metrics.to_dict() if self.metrics else None
        out["tolerance"] = self.tolerance.to_dict() if self.tolerance else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckpointResult":
        data = dict(data)
        if data.get("metrics") is not None:
            data["metrics"] = Metrics.from_dict(data["metrics"])
        data["tolerance"] = Tolerance.from_dict(data.get("tolerance"))
        return cls(**data)


@dataclass
class Verdict:
    """Per-checkpoint results of one run plus what is needed to reproduce it."""

    family: str
    preset: str
    mode: str
    parameters: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    checkpoints: list[CheckpointResult] = field(default_factory=list)
    # gate -> what it checked before the run (e.g. component parity records), or that it was skipped
    gates: dict[str, str] = field(default_factory=dict)
    # issue 18: the native side raised during the run: {"stage", "step", "message"}; the verdict
    # then holds only the checkpoints captured before it (the rest are missing in native) and fails
    native_error: dict[str, Any] | None = None
    # issue 16: how the calibrated bounds were measured (cache key, sides compared, variants, k)
    calibration: dict[str, Any] = field(default_factory=dict)
    # issue 16: converted vs official component configs, each {"file", "field", "official", "native"};
    # any difference fails the verdict and is its first finding
    config_differences: list[dict[str, Any]] = field(default_factory=list)
    # issue 16 drill-down: {"checkpoint", "step", "first_module", "modules": [{"name", "max_abs", "cosine",
    # "passed"}...], ...} when the first divergence was a denoiser checkpoint (workbench.parity.drilldown)
    drilldown: dict[str, Any] | None = None
    # issue 16 probe set: one row per probe request run after this one ({"name", "purpose", "request",
    # "passed", "first_divergence", "reason", "hint", "first_module"}); a failing probe fails the run
    probes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every checkpoint passed, the configs agree and the native side ran to the end;
        an empty comparison proves nothing and fails."""
        return (bool(self.checkpoints) and all(c.passed for c in self.checkpoints) and not self.config_differences
                and self.native_error is None)

    @property
    def first_finding(self) -> str | None:
        """What to fix first: a config difference (found before any run), else the first divergence."""
        if self.config_differences:
            return config_difference_line(self.config_differences[0])
        first = self.first_divergence
        return None if first is None else f"{first.name}: {first.reason}"

    @property
    def first_divergence(self) -> CheckpointResult | None:
        """The first failing checkpoint in pipeline order (its `hint` says where to look)."""
        return next((c for c in self.checkpoints if not c.passed), None)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed and all(p["passed"] for p in self.probes) else 1

    def result(self, name: str) -> CheckpointResult:
        for c in self.checkpoints:
            if c.name == name:
                return c
        raise KeyError(f"verdict has no checkpoint {name!r}")

    # ---- persistence ----
    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergence
        return {
            "family": self.family, "preset": self.preset, "mode": self.mode,
            "parameters": self.parameters, "versions": self.versions,
            "passed": self.passed,
            "first_divergence": None if first is None else {"name": first.name, "reason": first.reason,
                                                            "hint": first.hint},
            "checkpoints": [c.to_dict() for c in self.checkpoints],
            "gates": self.gates,
            "native_error": self.native_error,
            "calibration": self.calibration,
            "config_differences": self.config_differences,
            "first_finding": self.first_finding,
            "drilldown": self.drilldown,
            "probes": self.probes,
        }

    def to_json_text(self) -> str:
        """Keys sorted, floats at full repr precision, non-finite as strings."""
        return json.dumps(_finite_json(self.to_dict()), indent=1, sort_keys=True, allow_nan=False, default=str) + "\n"

    def to_json(self, path: str | Path) -> Path:
        """Write `to_json_text()` atomically."""
        return atomic_write_text(path, self.to_json_text())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        return cls(family=data["family"], preset=data["preset"], mode=data["mode"],
                   parameters=data.get("parameters", {}), versions=data.get("versions", {}),
                   checkpoints=[CheckpointResult.from_dict(c) for c in data.get("checkpoints", [])],
                   gates=data.get("gates", {}), native_error=data.get("native_error"),
                   calibration=data.get("calibration", {}),
                   config_differences=list(data.get("config_differences", [])),
                   drilldown=data.get("drilldown"), probes=data.get("probes", []))

    @classmethod
    def from_json(cls, path: str | Path) -> "Verdict":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise ParityError(f"verdict file {path} does not exist") from None
        except OSError as exc:
            raise ParityError(f"verdict file {path} cannot be read: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:  # ValueError covers invalid JSON
            raise ParityError(f"verdict file {path} is not a valid verdict: {exc!r}") from None

    # ---- display ----
    def summary_table(self) -> str:
        """Fixed-width text table at fixed significant digits (stable for nbval)."""
        name_w = max([len("checkpoint")] + [len(c.name) for c in self.checkpoints])
        header = f"{'checkpoint':<{name_w}}  {'kind':<9}  {'step':>4}  {'max_abs':>9}  {'mean_abs':>9}  " \
                 f"{'drift':>9}  {'cosine':>9}  {'media':<24}  {'result':>6}"
        lines = [f"{'PASS' if self.passed else 'FAIL'}  family={self.family} preset={self.preset} mode={self.mode}",
                 header, "-" * len(header)]
        for c in self.checkpoints:
            m = c.metrics
            step = "" if c.step is None else str(c.step)
            lines.append(
                f"{c.name:<{name_w}}  {c.kind:<9}  {step:>4}  {_fmt(m and m.max_abs_diff, '%.3e'):>9}  "
                f"{_fmt(m and m.mean_abs_diff, '%.3e'):>9}  {_fmt(m and m.rel_abs_mean_drift, '%.3e'):>9}  "
                f"{_fmt(m and m.cosine, '%.6f'):>9}  {_media(m):<24}  {'pass' if c.passed else 'FAIL':>6}")
        if self.config_differences:
            lines.append(f"first finding: config differs: {config_difference_line(self.config_differences[0])}")
            lines += [f"config differs: {config_difference_line(d)}" for d in self.config_differences[1:]]
        first = self.first_divergence
        if self.native_error is not None:
            lines.append(f"native side raised: {native_error_text(self.native_error)} "
                         "(partial verdict: checkpoints after it are missing in native)")
        if first is not None:
            lines.append(f"first divergence: {first.name}: {first.reason}")
            lines.append(f"hint: {first.hint}")
        elif not self.checkpoints:
            lines.append("no checkpoints were compared")
        lines += [f"gate {gate}: {outcome}" for gate, outcome in self.gates.items()]
        return "\n".join(lines)


def native_error_text(error: dict[str, Any]) -> str:
    """"stage 'DecodingStage' step 2: RuntimeError: ..." (no step outside a denoising loop)."""
    step = "" if error.get("step") is None else f" step {error['step']}"
    return f"stage {error.get('stage')!r}{step}: {error.get('message')}"


def config_difference_line(diff: dict[str, Any]) -> str:
    """`vae/config.json: latents_std[0] 0.77 (official) vs 0.78 (native)`."""
    return f"{diff['file']}: {diff['field']} {diff['official']!r} (official) vs {diff['native']!r} (native)"


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return spec % value


def _media(m: Metrics | None) -> str:
    if m is None:
        return ""
    if m.psnr is not None:
        return f"psnr {_fmt(m.psnr, '%.2f')} ssim {_fmt(m.ssim, '%.4f')}"
    if m.snr_db is not None:
        return f"snr {_fmt(m.snr_db, '%.2f')} stft {_fmt(m.stft_distance, '%.2e')}"
    return ""


def _finite_json(obj: Any) -> Any:
    """Replace inf/nan (not valid JSON) by the strings "inf", "-inf", "nan"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_json(v) for v in obj]
    return obj
