"""Automatic drill-down: from a denoiser checkpoint that diverged to the first module that did.

When the first divergence of a parity run is a denoiser checkpoint (a noise prediction, or a
step's latents where the loop records no predictions), `run_parity` re-runs that step on both
sides with a forward hook on every submodule of the denoisers and compares the outputs of the
step's first denoiser call module by module, in the order the reference modules finish (a leaf
finishes before its block, so the first failing module is the deepest one where the
divergence enters). Reference modules are named as the official model names them
(`transformer.blocks.0.attn1.to_q`); a native module of another class (the native Wan DiT) is
renamed through its weight converter's key map (`convert_state_dict`), and native modules the
map cannot name (fused q/k/v) are left out and counted.

Both runs stop right after the hooked call (no later steps, no decode). Large denoisers are
drilled in two passes (top-level modules and blocks first, then every submodule of the first
divergent one) so the recorded outputs stay small. The result is `Verdict.drilldown`:
{"checkpoint", "step", "first_module", "modules": [{"name", "max_abs", "cosine", "passed"}], ...}.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator, Mapping

import torch

from workbench.parity.capture import as_tensor
from workbench.parity.metrics import compare_tensors
from workbench.parity.tolerances import EXACT, Tolerance
from workbench.runtime.stages import first_output
from workbench.trace.context import current_step

DENOISERS = ("transformer", "transformer_2")
#: Fast mode, module level: DESIGN's trace block flag (relative abs-mean drift > 0.5%) with the
#: latent-level cosine floor of a bf16 cross-kernel comparison (tolerances.FAST_BY_KIND "noise").
FAST_MODULE = Tolerance(min_cosine=0.99, max_drift=0.005)
#: Denoisers above this many parameters are drilled in two passes (blocks first): every module
#: output of one full-size call would not fit in host memory.
TWO_PASS_PARAMETERS = 100_000_000
#: Modules listed after the first divergent one (the list stays readable at full size).
LISTED_AFTER = 10


class _StepDone(Exception):
    """Raised from the hooked call's end: the drill-down has what it needs, the run stops."""


def triggers_drilldown(verdict) -> bool:
    """A first divergence inside the denoiser: a branch's noise prediction, or a step's latents when
    that step records no predictions (a loop without the finer checkpoints). A guided prediction
    whose branches matched is the guidance formula's, not the denoiser's: no drill-down."""
    first = verdict.first_divergence
    if first is None or first.step is None or first.metrics is None or first.reason.startswith("missing"):
        return False
    if first.kind == "noise":
        return "noise_guided_step_" not in first.name
    if first.kind == "latent":
        return not any(c.step == first.step and c.kind == "noise" for c in verdict.checkpoints)
    return False


def module_name_map(native: torch.nn.Module, official_keys: list[str]) -> dict[str, str] | None:
    """Native module name -> official module name, from the native class's weight converter
    (`convert_state_dict`, official keys -> native keys); None when the class has none (same names)."""
    convert = getattr(type(native), "convert_state_dict", None)
    if convert is None:
        return None
    mapping: dict[str, str] = {}
    for key in official_keys:
        try:  # one key at a time: fused keys (q/k/v) need their group and are left unmapped
            (native_key,) = convert({key: torch.empty(1, 1, device="meta")}, "drill-down").keys()
        except Exception:  # noqa: BLE001 - any converter refusal means "no one-to-one module"
            continue
        native_module, official_module = native_key.rpartition(".")[0], key.rpartition(".")[0]
        mapping.setdefault(native_module, official_module)
    return mapping


@contextmanager
def capture_step_modules(roots: Mapping[str, torch.nn.Module], step: int, names: Mapping[str, dict | None],
                         include: Callable[[str], bool] = lambda name: True) -> Iterator[dict[str, torch.Tensor]]:
    """Record (CPU copies of) every included module output of the first denoiser call in `step`
    (`current_step()`, which both sides' loops set); names are `<root>.<official module name>`.
    The run is stopped when that call returns (`_StepDone`, swallowed by the caller)."""
    records: dict[str, torch.Tensor] = {}
    state = {"active": False, "done": False}

    def pre_root(_module, _args):
        if not state["done"] and current_step() == step:
            state["active"] = True

    def post_root(_module, _args, _output):
        if state["active"]:
            state["active"], state["done"] = False, True
            raise _StepDone

    def recorder(name: str):
        def hook(_module, _args, output):
            if state["active"] and name not in records:
                tensor = as_tensor(output)
                tensor = tensor if tensor is not None else first_output(output)
                if tensor is not None:
                    records[name] = tensor.detach().to("cpu", copy=True)
        return hook

    with ExitStack() as stack:
        for root_name, root in roots.items():
            mapping = names.get(root_name)
            for sub_name, module in root.named_modules():
                official = sub_name if mapping is None else mapping.get(sub_name, None if sub_name else "")
                if official is None:
                    continue
                canonical = f"{root_name}.{official}" if official else root_name
                if not include(canonical):
                    continue
                stack.callback(module.register_forward_hook(recorder(canonical)).remove)
            stack.callback(root.register_forward_pre_hook(pre_root).remove)
            stack.callback(root.register_forward_hook(post_root).remove)  # registered last: runs after the recorder
        yield records


def _run_until_step(run: Callable[[], Any]) -> None:
    try:
        run()
    except _StepDone:
        pass


def _comparable(ref: torch.Tensor, nat: torch.Tensor) -> torch.Tensor:
    """The native output lined up with the reference's: a batched [uncond, cond] call against an
    official cond-first call compares its cond half."""
    if nat.dim() and ref.dim() and nat.shape[0] == 2 * ref.shape[0] and nat.shape[1:] == ref.shape[1:]:
        return nat[ref.shape[0]:]
    return nat


def compare_modules(reference: dict[str, torch.Tensor], native: dict[str, torch.Tensor],
                    tolerance: Tolerance, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """Every module both sides recorded with the same output shape, in reference completion order;
    modules whose output layout differs by construction (a Conv3d patch embedding run as a GEMM)
    go to `skipped`: what they compute shows in the next module that both lay out alike."""
    rows = []
    for name, ref in reference.items():
        if name not in native:
            continue
        nat = _comparable(ref, native[name])
        if nat.shape != ref.shape:
            if skipped is not None:
                skipped.append(name)
            continue
        metrics = compare_tensors(ref, nat, "latent")
        passed, reason = tolerance.check(metrics)
        rows.append({"name": name, "max_abs": metrics.max_abs_diff, "cosine": metrics.cosine, "passed": passed,
                     **({"reason": reason} if reason else {})})
    return rows


def _depth_one(name: str) -> bool:
    """`transformer`, its direct children and the blocks of a block list (`transformer.blocks.3`)."""
    parts = name.split(".")
    return len(parts) <= 2 or (len(parts) == 3 and parts[2].isdigit())


def drill_down(family, root, params, checkpoint, *, mode: str = "exact", device: torch.device | str = "cpu",
               compile: bool = False) -> dict[str, Any]:
    """Re-run `checkpoint.step` with module capture on both sides; the first divergent module."""
    from workbench.api.generate import load_pipeline
    from workbench.parity.runner import load_official

    step = checkpoint.step
    device = torch.device(device)
    native_pipe = load_pipeline(root / "converted", device=device, mode=mode, compile=compile, progress=False)
    official_pipe = load_official(family, root / "official", device, mode)
    native_roots = {n: m for n in DENOISERS if isinstance(m := native_pipe.get_module(n, None), torch.nn.Module)}
    official_roots = {n: m for n in DENOISERS if isinstance(m := getattr(official_pipe, n, None), torch.nn.Module)}
    names = {n: module_name_map(native_roots[n], list(official_roots[n].state_dict()))
             for n in native_roots if n in official_roots}
    identity = {n: None for n in official_roots}
    tolerance = EXACT if mode == "exact" else FAST_MODULE

    def one_pass(include: Callable[[str], bool]) -> tuple[dict, dict]:
        with capture_step_modules(native_roots, step, names, include) as native:
            _run_until_step(lambda: native_pipe(params))
        with capture_step_modules(official_roots, step, identity, include) as reference:
            _run_until_step(lambda: family.reference.run_reference(root / "official", params, device,
                                                                   pipe=official_pipe))
        return reference, native

    size = sum(p.numel() for m in official_roots.values() for p in m.parameters())
    passes = 2 if size > TWO_PASS_PARAMETERS else 1
    skipped: list[str] = []
    reference, native = one_pass(_depth_one if passes == 2 else (lambda name: True))
    rows = compare_modules(reference, native, tolerance, skipped)
    if passes == 2:
        coarse = next((r["name"] for r in rows if not r["passed"]), None)
        if coarse is not None and coarse.count(".") >= 1:
            skipped = []
            reference, native = one_pass(lambda name: name == coarse or name.startswith(coarse + "."))
            rows = compare_modules(reference, native, tolerance, skipped)
    first = next((r for r in rows if not r["passed"]), None)
    shown = rows if first is None else rows[:rows.index(first) + 1 + LISTED_AFTER]
    unmapped = sum(1 for n, mapping in names.items() if mapping is not None
                   for sub, _ in native_roots[n].named_modules() if sub and sub not in mapping)
    expert = (checkpoint.reference_meta or {}).get("expert")
    return {
        "checkpoint": checkpoint.name, "step": step, "expert": expert, "mode": mode,
        "first_module": first["name"] if first else None,
        "modules": shown, "compared": len(rows), "passes": passes, "native_unmapped": unmapped,
        "layout_differs": skipped,
        "tolerance": tolerance.describe(),
        "note": (f"first divergent module {first['name']} ({_metrics_text(first)})" if first else
                 f"all {len(rows)} module outputs of step {step}'s first denoiser call agree: the divergence "
                 "is outside the denoiser modules (guidance, scheduler, or the inputs given to the call)"),
    }


def _metrics_text(row: Mapping[str, Any]) -> str:
    if row.get("max_abs") is None:
        return row.get("reason", "not comparable")
    return f"max_abs {row['max_abs']:.3e}, cosine {row['cosine']:.6f}"


def format_drilldown(drilldown: Mapping[str, Any] | None) -> str:
    """The console lines of a drill-down (empty when there is none)."""
    if not drilldown:
        return ""
    head = f"drill-down ({drilldown['checkpoint']}, step {drilldown['step']}"
    head += f", {drilldown['expert']}" if drilldown.get("expert") else ""
    lines = [head + f"): {drilldown['note']}"]
    first = drilldown.get("first_module")
    if first:
        index = next(i for i, m in enumerate(drilldown["modules"]) if m["name"] == first)
        for row in drilldown["modules"][max(0, index - 2):index + 3]:
            lines.append(f"  {row['name']:<48} {_metrics_text(row):<40}  {'pass' if row['passed'] else 'FAIL'}")
    return "\n".join(lines)
