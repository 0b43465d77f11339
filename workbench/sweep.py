"""Parity or generation over a parameter grid: one case per grid point, on any executor.

A case is a small picklable task. Its id hashes exactly the inputs that decide its result
(what, family, preset, mode, device, model directory, compile, request), so a grid point
always maps to the same `<out>/cases/<case-id>.json`: the verdict (the JSON
`workbench parity --json` writes) or, for generation, a record of the output, whose
media go to `<out>/media/`. Workers return results and the driver writes them as they
arrive, so a multi-node cluster needs no shared filesystem, and a case whose JSON exists
is finished: a rerun (after an interruption or a failure) runs only the others, unless
forced. None of these files holds a wall-clock time, so equal inputs give equal files
whichever executor ran them; the seconds are in the summary.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from workbench.errors import ParameterError
from workbench.run_report import RunResult, status_line, write_index

WHATS = ("parity", "generate")
DEFAULT_MODE = {"parity": "exact", "generate": "auto"}
MEDIA_SUFFIX = {"frames": ".mp4", "waveform": ".wav", "joint": ".mp4"}


# ---- the grid ------------------------------------------------------------------------------
def parse_grid(items: Sequence[str] | None) -> dict[str, list[Any]]:
    """`["seed=0,1", 'prompt=["a cat, wet", "a dog"]']` -> {"seed": [0, 1], "prompt": [...]}:
    comma-separated values (parsed like --set), or a JSON list when a value holds a comma."""
    from workbench.api.params import SamplingParam, parse_value

    grid: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ParameterError(f"--grid {item!r}: expected KEY=V1,V2,...")
        if key in grid:
            raise ParameterError(f"--grid {key}: given twice; list every value in one --grid")
        values = _json_list(text) if text.lstrip().startswith("[") else [parse_value(v.strip(), key)
                                                                          for v in text.split(",")]
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise ParameterError(f"--grid {item!r}: a value is repeated")
        grid[key] = values
    SamplingParam.check_keys(grid.keys(), "--grid")
    return grid


def _json_list(text: str) -> list[Any]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(f"--grid {text!r}: not a JSON list ({exc})") from None
    if not isinstance(values, list) or not values:
        raise ParameterError(f"--grid {text!r}: expected a non-empty JSON list")
    return values


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination, the last key varying fastest (the order of the summary)."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


# ---- one case ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseOutput:
    record: str                      # the case JSON, as written
    passed: bool                     # a verdict that passed, or a generation that finished
    detail: str                      # for a failed verdict: its first divergence
    seconds: float
    media: dict[str, bytes] = field(default_factory=dict)  # generated files by name


@dataclass(frozen=True)
class Case:
    what: str
    family: str
    request: dict[str, Any]
    preset: str | None = None
    mode: str = "exact"
    device: str = "cpu"
    model_dir: str | None = None
    compile: bool = False
    cpus: int = 1                    # its Ray CPUs, and its torch threads on every executor (per rank)
    label: str = ""                  # the grid point, for the summary
    sp: int = 1                      # sequence-parallel ranks (GPUs on CUDA), all on one node

    @property
    def identity(self) -> dict[str, Any]:
        identity = {"what": self.what, "family": self.family, "preset": self.preset, "mode": self.mode,
                    "device": self.device, "model_dir": self.model_dir, "compile": self.compile,
                    "request": self.request}
        if self.sp != 1:  # absent at 1: the ids of existing cases stay as they were
            identity["sp"] = self.sp
        return identity

    @property
    def key(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.family}-{digest[:12]}"

    def __call__(self) -> CaseOutput:
        """Run the case on `cpus` torch threads: CPU results move ~1e-7 with the thread
        count, so the same case computes the same numbers on every executor."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(self.cpus)
        start = time.perf_counter()
        try:
            if self.sp != 1:
                record, passed, detail, media = self._sequence_parallel()
            else:
                record, passed, detail, media = self._parity() if self.what == "parity" else self._generate()
        finally:
            torch.set_num_threads(threads)
        return CaseOutput(record, passed, detail, time.perf_counter() - start, media)

    def _parity(self):
        from workbench.parity.runner import run_parity

        verdict = run_parity(self.family, preset=self.preset, request=self.request, mode=self.mode,
                             model_dir=self.model_dir, device=self.device, compile=self.compile).verdict
        first = verdict.first_divergence
        detail = f"first divergence: {first.name}: {first.reason}" if first else "no checkpoints were compared"
        return verdict.to_json_text(), verdict.passed, "" if verdict.passed else detail, {}

    def _generate(self):
        from workbench import registry
        from workbench.api.generate import generate

        suffix = MEDIA_SUFFIX[registry.get_family(self.family).output_kind]
        with tempfile.TemporaryDirectory() as tmp:
            result = generate(self.family, preset=self.preset, request=self.request, device=self.device,
                              mode=self.mode, compile=self.compile, model_dir=self.model_dir,
                              out=Path(tmp) / f"{self.key}{suffix}", progress=False)
            media = {p.name: p.read_bytes() for p in result.paths}
        output = result.output.detach().float().cpu().contiguous()
        record = {**self.identity, "parameters": result.params.to_json_dict(), "media": sorted(media),
                  "output_shape": list(output.shape),
                  "output_sha256": hashlib.sha256(output.numpy().tobytes()).hexdigest()}
        return json.dumps(record, indent=1, sort_keys=True, default=str) + "\n", True, "", media


    def _sequence_parallel(self):
        """`sp` ranks on this host (the node Ray placed the case on), rank 0 writing the record."""
        from dataclasses import asdict

        from workbench.api.sequence_parallel import launch_call

        with tempfile.TemporaryDirectory() as tmp:
            payload = {"case": asdict(self), "out": tmp}
            rc = launch_call("workbench.sweep:sp_case_rank", payload, self.sp)
            record_path = Path(tmp) / "record.json"
            if rc not in (0, 1) or not record_path.is_file():
                raise ParameterError(f"case {self.key}: --sp {self.sp} ranks exited with code {rc}")
            record = record_path.read_text()
            media = {p.name: p.read_bytes() for p in (Path(tmp) / "media").glob("*")}
        data = json.loads(record)
        first = data.get("first_divergence")
        detail = "" if data.get("passed", True) else (
            f"first divergence: {first['name']}: {first['reason']}" if first else "no checkpoints were compared")
        return record, data.get("passed", True), detail, media


def sp_case_rank(payload: dict[str, Any]) -> int:
    """One rank of a sequence-parallel case (started by `Case._sequence_parallel`); rank 0 writes
    `record.json` (and media) into `payload["out"]`."""
    import torch

    from workbench.io import atomic_write_text

    case = Case(**payload["case"])
    out = Path(payload["out"])
    torch.set_num_threads(case.cpus)
    if case.what == "parity":
        from workbench.parity.sequence_parallel import run_sp_parity

        result = run_sp_parity(case.family, case.sp, preset=case.preset, request=case.request,
                               model_dir=case.model_dir, device=case.device, compile=case.compile)
        if result is not None:
            atomic_write_text(out / "record.json", result.to_json_text())
        return 0
    from workbench import registry
    from workbench.api.sequence_parallel import generate_sp

    suffix = MEDIA_SUFFIX[registry.get_family(case.family).output_kind]
    (out / "media").mkdir(parents=True, exist_ok=True)
    result = generate_sp(case.family, case.sp, preset=case.preset, request=case.request, device=case.device,
                         compile=case.compile, model_dir=case.model_dir, out=out / "media" / f"{case.key}{suffix}")
    if result is not None:
        output = result.output.detach().float().cpu().contiguous()
        record = {**case.identity, "parameters": result.params.to_json_dict(), "media": sorted(p.name for p in result.paths),
                  "output_shape": list(output.shape),
                  "output_sha256": hashlib.sha256(output.numpy().tobytes()).hexdigest()}
        atomic_write_text(out / "record.json", json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    return 0


def make_cases(family: str, grid: Mapping[str, Sequence[Any]], base: Mapping[str, Any] | None = None, *,
               what: str = "parity", preset: str | None = None, mode: str | None = None, device: str = "cpu",
               model_dir: str | Path | None = None, compile: bool = False, cpus: int = 1, sp: int = 1) -> list[Case]:
    """One case per grid point over the `base` request (a key in both is refused). `sp` > 1: each
    case runs on `sp` sequence-parallel ranks (on Ray: `sp` GPUs, or `sp * cpus` CPUs, of one node)."""
    from workbench import registry

    fam = registry.get_family(family)
    if what not in WHATS:
        raise ParameterError(f"--what {what!r}: expected one of {', '.join(WHATS)}")
    if cpus < 1:
        raise ParameterError(f"--cpus {cpus}: expected 1 or more")
    base = dict(base or {})
    both = sorted(set(base) & set(grid))
    if both:
        raise ParameterError(f"{', '.join(both)}: given by --set and by --grid; keep one")
    if not grid:
        raise ParameterError("no --grid KEY=V1,V2: a sweep needs at least one varied parameter")
    mode = mode or DEFAULT_MODE[what]
    if sp != 1:
        _check_sp(fam, what, mode, sp)
    model_dir = str(Path(model_dir).resolve()) if model_dir else None
    return [Case(what, family, {**base, **point}, preset, mode, device, model_dir, compile,
                 cpus, label=" ".join(f"{k}={v}" for k, v in point.items()), sp=sp)
            for point in grid_points(grid)]


def _check_sp(family, what: str, mode: str, sp: int) -> None:
    if sp < 1:
        raise ParameterError(f"--sp {sp}: expected 1 or more ranks")
    if family.fast.module_classes.get("transformer") != ("workbench", "WanTransformer"):
        raise ParameterError(f"--sp: family {family.name} has no native sequence-parallel DiT (wan_t2v, wan22_t2v)")
    if mode == "exact" or (what == "parity" and mode != "fast"):
        raise ParameterError(f"--sp with --mode {mode}: sequence parallelism runs the native Wan DiT; use --mode fast")


# ---- the driver ----------------------------------------------------------------------------
def case_path(out: Path, case: Case) -> Path:
    return Path(out) / "cases" / f"{case.key}.json"


def run_sweep(cases: Sequence[Case], out: str | Path, executor=None, force: bool = False,
              progress: bool = True) -> list[RunResult]:
    """Run the cases not finished in `out` (all of them with `force`) on `executor` (default:
    in this process), write each result as it arrives, then summary.txt and index.html."""
    from workbench.executors import LocalExecutor

    out = Path(out).resolve()
    (out / "cases").mkdir(parents=True, exist_ok=True)
    results: dict[str, RunResult] = {}
    pending = []
    for case in cases:
        earlier = None if force else _earlier_result(out, case)
        if earlier is None:
            pending.append(case)
        else:
            results[case.key] = earlier
    family = cases[0].family if cases else ""
    try:
        for done in (executor or LocalExecutor()).run(pending, desc=f"sweep {family}", progress=progress):
            result = results[done.task.key] = _store(out, done)
            if progress:
                from tqdm.auto import tqdm

                tqdm.write(status_line(result))
    finally:  # interrupted too: the index shows what finished
        ordered = [results[c.key] for c in cases if c.key in results]
        write_index(out, ordered, item="case", title=f"workbench sweep {family}")
    return ordered


def _earlier_result(out: Path, case: Case) -> RunResult | None:
    """A finished case (its JSON exists and reads), else None: it runs (again)."""
    path = case_path(out, case)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("passed", True):
        return RunResult(case.family, case.label, "skipped", None, path, "finished earlier (--force reruns it)")
    first = data.get("first_divergence") or {}
    reason = (f"first divergence: {first.get('name')}: {first.get('reason')}" if first
              else "no checkpoints were compared")
    return RunResult(case.family, case.label, "failed", None, path, f"earlier run: {reason}")


def _store(out: Path, done) -> RunResult:
    """Write a finished case: its media, then its JSON (the JSON marks it finished); a case
    that returned nothing gets `<case-id>.error.txt` and runs again next time."""
    from workbench.io import atomic_write_bytes, atomic_write_text

    case: Case = done.task
    path, error_path = case_path(out, case), case_path(out, case).with_suffix(".error.txt")
    if done.error:
        atomic_write_text(error_path, f"{done.error}\n\ncase {case.key}:\n"
                                      f"{json.dumps(case.identity, indent=1, sort_keys=True, default=str)}\n")
        return RunResult(case.family, case.label, "failed", None, error_path, done.error)
    output: CaseOutput = done.result
    for name, data in output.media.items():
        atomic_write_bytes(out / "media" / name, data)
    atomic_write_text(path, output.record)
    error_path.unlink(missing_ok=True)
    return RunResult(case.family, case.label, "ok" if output.passed else "failed", output.seconds, path,
                     output.detail)
