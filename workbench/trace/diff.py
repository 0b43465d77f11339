"""Diff two activation traces and name the first module whose output drifts.

Records are aligned by (module, tensor, step, call). Walking A's records in file order
(the order modules finished), the first one whose relative abs-mean drift exceeds the
threshold (DESIGN section 6: "trace block flag: relative abs-mean drift > 0.5%"), whose
shape differs, or that B lacks is the first divergence: upstream modules agree, so the
fault is in this module or its inputs from outside the traced tree.

Pick the threshold for the mode: the default 0.5% absorbs bf16/cross-kernel noise in
fast mode; exact-mode traces agree bitwise, so use a near-zero threshold (e.g. 1e-6).
Abs-mean drift is only second order in a zero-mean perturbation, so under the default
a small fault can stay below the flag for a module or two and be named downstream.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ParityError

DEFAULT_REL_THRESHOLD = 0.005
#: Denominator floor for relative drift, so an all-zero activation does not divide by zero.
DRIFT_FLOOR = 1e-12

TraceKey = tuple[str, str, int | None, int]
MISSING_IN_B = "missing in B"


@dataclass(frozen=True)
class RecordDiff:
    """One aligned record; `reason` is empty when A and B agree within the threshold."""

    module: str
    tensor: str
    step: int | None
    call: int
    a_abs_mean: float | None
    b_abs_mean: float | None
    rel_drift: float | None
    a_shape: list[int] | None = None
    b_shape: list[int] | None = None
    reason: str = ""

    @property
    def divergent(self) -> bool:
        return bool(self.reason)

    def describe(self) -> str:
        where = f"{self.module} {self.tensor} step={self.step} call={self.call}"
        return f"{where}: {self.reason}" if self.reason else where


@dataclass(frozen=True)
class ModuleDrift:
    module: str
    max_rel_drift: float
    records: int
    divergent: int


@dataclass
class TraceDiffResult:
    a_path: str
    b_path: str
    rel_threshold: float
    records: list[RecordDiff] = field(default_factory=list)  # A's file order, incl. missing in B
    only_in_b: list[TraceKey] = field(default_factory=list)

    @property
    def first_divergence(self) -> RecordDiff | None:
        return next((r for r in self.records if r.divergent), None)

    @property
    def missing_in_b(self) -> list[RecordDiff]:
        return [r for r in self.records if r.reason == MISSING_IN_B]

    @property
    def divergent(self) -> bool:
        return self.first_divergence is not None or bool(self.only_in_b)

    def worst_modules(self, top: int = 10) -> list[ModuleDrift]:
        """Modules by their largest drift over all compared records, worst first."""
        by_module: dict[str, list[RecordDiff]] = {}
        for r in self.records:
            by_module.setdefault(r.module, []).append(r)
        rows = [ModuleDrift(m, max((r.rel_drift for r in rs if r.rel_drift is not None), default=math.nan),
                            len(rs), sum(r.divergent for r in rs)) for m, rs in by_module.items()]
        rows.sort(key=lambda d: (math.isnan(d.max_rel_drift), 0.0 if math.isnan(d.max_rel_drift) else -d.max_rel_drift))
        return rows[:top]

    def summary(self, top: int = 10) -> str:
        """First divergence, missing records and the worst-module table, at fixed digits."""
        lines = [f"trace diff: {self.a_path} (A) vs {self.b_path} (B), {len(self.records)} records, "
                 f"rel threshold {self.rel_threshold:.3e}"]
        first = self.first_divergence
        lines.append(f"first divergence: {first.describe()}" if first else "first divergence: none")
        missing = self.missing_in_b
        if missing:
            lines.append(f"missing in B: {len(missing)} records (first: {missing[0].module} {missing[0].tensor} "
                         f"step={missing[0].step} call={missing[0].call})")
        if self.only_in_b:
            module, tensor, step, call = self.only_in_b[0]
            lines.append(f"missing in A: {len(self.only_in_b)} records "
                         f"(first: {module} {tensor} step={step} call={call})")
        worst = self.worst_modules(top)
        if worst:
            width = max(len("module"), *(len(w.module) for w in worst))
            lines.append(f"{'module':<{width}}  {'max_rel_drift':>13}  {'records':>7}  {'divergent':>9}")
            for w in worst:
                drift = "-" if math.isnan(w.max_rel_drift) else f"{w.max_rel_drift:.3e}"
                lines.append(f"{w.module:<{width}}  {drift:>13}  {w.records:>7}  {w.divergent:>9}")
        return "\n".join(lines)


def load_trace(path: str | Path) -> dict[TraceKey, dict[str, Any]]:
    """Records of one JSONL trace keyed by (module, tensor, step, call), in file order."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParityError(f"trace file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParityError(f"trace file {path} cannot be read as text: {exc}") from None
    records: dict[TraceKey, dict[str, Any]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParityError(f"{path}:{lineno}: not a JSON record ({exc.msg})") from None
        if not isinstance(record, dict) or not {"module", "tensor"} <= record.keys():
            raise ParityError(f"{path}:{lineno}: a trace record needs 'module' and 'tensor' fields")
        if "abs_mean" not in record:
            raise ParityError(f"{path}:{lineno}: record has no 'abs_mean' stat "
                              "(keep abs_mean in WORKBENCH_TRACE_STATS)")
        try:
            _number(record["abs_mean"])
            key = (str(record["module"]), str(record["tensor"]), record.get("step"), int(record.get("call", 0)))
        except (TypeError, ValueError):
            raise ParityError(f"{path}:{lineno}: 'abs_mean' must be a number and 'call' an integer") from None
        if key in records:
            raise ParityError(f"{path}:{lineno}: duplicate record for {key}")
        records[key] = record
    return records


def _number(value: Any) -> float | None:
    return None if value is None else float(value)  # non-finite stats are stored as "nan"/"inf"


def _compare(key: TraceKey, a: dict[str, Any], b: dict[str, Any] | None, threshold: float) -> RecordDiff:
    module, tensor, step, call = key
    a_mean = _number(a["abs_mean"])
    if b is None:
        return RecordDiff(module, tensor, step, call, a_mean, None, None, a.get("shape"), None, MISSING_IN_B)
    b_mean = _number(b["abs_mean"])
    a_shape, b_shape = a.get("shape"), b.get("shape")
    drift = None
    reason = ""
    if a_shape is not None and b_shape is not None and a_shape != b_shape:
        reason = f"shape mismatch: A {a_shape} vs B {b_shape}"
    elif a_mean is None or b_mean is None:
        reason = "" if a_mean == b_mean else f"abs_mean A {a_mean} vs B {b_mean} (empty tensor on one side)"
    elif not (math.isfinite(a_mean) and math.isfinite(b_mean)):
        reason = f"non-finite abs_mean: A {a_mean} vs B {b_mean}"
    else:
        drift = abs(a_mean - b_mean) / max(abs(a_mean), DRIFT_FLOOR)
        if drift > threshold:
            reason = f"rel drift {drift:.3e} > {threshold:.3e} (abs_mean A {a_mean:.6e}, B {b_mean:.6e})"
    return RecordDiff(module, tensor, step, call, a_mean, b_mean, drift, a_shape, b_shape, reason)


def trace_diff(a_path: str | Path, b_path: str | Path, rel_threshold: float = DEFAULT_REL_THRESHOLD) -> TraceDiffResult:
    """Align two traces and find the first divergent record in A's file order."""
    if not (rel_threshold >= 0 and math.isfinite(rel_threshold)):
        raise ParityError(f"--rel-threshold must be a finite number >= 0, got {rel_threshold}")
    a, b = load_trace(a_path), load_trace(b_path)
    return TraceDiffResult(
        a_path=str(a_path), b_path=str(b_path), rel_threshold=rel_threshold,
        records=[_compare(key, record, b.get(key), rel_threshold) for key, record in a.items()],
        only_in_b=[key for key in b if key not in a],
    )
