"""Running a command as N sequence-parallel ranks on one host (`--sp N`).

Two ways in, one code path:

- `torchrun --nproc-per-node N -m workbench.cli generate|parity FAMILY --sp N ...`: each
  process torchrun starts is a rank (RANK / WORLD_SIZE / LOCAL_RANK / MASTER_* in its
  environment);
- `workbench generate|parity FAMILY --sp N ...` without those variables: `launch()` starts the N
  ranks itself on this host (`python -m workbench.api.sequence_parallel`, the same command's
  arguments as JSON), each with the variables torchrun would set, and waits for them. Rank 0
  prints and writes; the exit code is rank 0's. When another rank fails first, the rest are
  stopped (by their process ids) and its last error line is printed.

A rank joins the group with `init_rank()`: NCCL on CUDA (one GPU per rank, cuda:LOCAL_RANK,
NVLink multicast off: NCCL_NVLS_ENABLE=0), gloo on CPU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ParameterError, WorkbenchError

RANK_VARS = ("RANK", "WORLD_SIZE")
INIT_METHOD_VAR = "WORKBENCH_SP_INIT_METHOD"  # a torch.distributed init_method; default env://
TIMEOUT_VAR = "WORKBENCH_SP_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600
NCCL_SAFE_ENV = {"NCCL_NVLS_ENABLE": "0"}  # device README: NVLink multicast stays off
SUPPORTED = "wan_t2v, wan22_t2v"
RANK_CRASHED = 3  # exit code of a rank that raised something else than a WorkbenchError
GRACE_S = 10.0  # after a rank fails, how long the others get before they are stopped


def in_rank() -> bool:
    """True inside a rank process (torchrun's, or one that `launch` started)."""
    return all(v in os.environ for v in RANK_VARS)


def rank_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the environment torchrun defines."""
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError) as exc:
        raise ParameterError(f"--sp: bad rank environment ({exc}); set RANK, WORLD_SIZE, LOCAL_RANK as torchrun does")
    return rank, world, local


def check_request(family, sp: int, mode: str, device: str, model_dir: str | Path | None = None) -> Path:
    """Refuse what SP cannot run before any rank starts; returns the model directory (built
    once here, so the ranks find it cached)."""
    from workbench.components.sequence_parallel import check_heads
    from workbench.components.wan_transformer import WanTransformerConfig
    from workbench.parity.runner import resolve_model_dir

    if sp < 1:
        raise ParameterError(f"--sp {sp}: expected 1 or more ranks")
    if family.fast.module_classes.get("transformer") != ("workbench", "WanTransformer"):
        raise ParameterError(f"--sp: family {family.name} has no native sequence-parallel DiT "
                             f"(sequence parallelism runs the native Wan DiT: {SUPPORTED})")
    if mode == "exact":
        raise ParameterError("--sp: sequence parallelism runs the native Wan DiT, i.e. fast mode; "
                             "use --mode fast (exact mode keeps the diffusers transformer)")
    if device.startswith("cuda:"):
        raise ParameterError(f"--device {device}: with --sp, rank r uses cuda:r (LOCAL_RANK); give 'cuda' or 'auto'")
    if device in ("cuda", "auto") and torch.cuda.is_available() and torch.cuda.device_count() < sp:
        raise ParameterError(f"--sp {sp}: this host has {torch.cuda.device_count()} CUDA device(s); "
                             f"one rank per GPU needs {sp}")
    root = resolve_model_dir(family, model_dir)
    for name in ("transformer", "transformer_2"):
        config = root / "converted" / name / "config.json"
        if config.is_file():
            check_heads(WanTransformerConfig.from_file(config).num_attention_heads, sp, f"{name} ({config})")
    return root


def init_rank(sp: int, device: str) -> tuple[int, torch.device]:
    """Join the process group of this rank; (rank, this rank's device)."""
    import torch.distributed as dist

    rank, world, local = rank_info()
    if world != sp:
        raise ParameterError(f"--sp {sp}: this process was launched as one of {world} ranks (WORLD_SIZE); "
                             f"give --sp {world} or launch {sp} processes")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ParameterError(f"--device {device}: CUDA is not available on this machine")
        for key, value in NCCL_SAFE_ENV.items():
            os.environ.setdefault(key, value)
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_VAR, DEFAULT_TIMEOUT_S)))
        kwargs = {"device_id": dev} if use_cuda else {}
        dist.init_process_group("nccl" if use_cuda else "gloo", init_method=os.environ.get(INIT_METHOD_VAR, "env://"),
                                rank=rank, world_size=world, timeout=timeout, **kwargs)
    return rank, dev


def finish_rank() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def sp_models(pipe) -> list:
    """The DiTs SP shards: the transformer, and Wan 2.2's second expert."""
    return [m for m in (pipe.get_module("transformer"), pipe.get_module("transformer_2")) if m is not None]


def generate_sp(family_name: str, sp: int, *, preset: str | None = None, request=None, device: str = "auto",
                compile: bool = False, model_dir: str | Path | None = None, out=None, frames_dir=None, hooks=None):
    """Inside a rank: `generate()` with the DiT token-sharded over the ranks (fast mode). Rank 0
    writes the media and returns the Generation; other ranks return None."""
    from workbench import registry
    from workbench.api.generate import generate, load_pipeline
    from workbench.components.sequence_parallel import sequence_parallel
    from workbench.families.offline import quiet_hf

    family = registry.get_family(family_name)
    quiet_hf()
    root = check_request(family, sp, "fast", device, model_dir)
    rank, dev = init_rank(sp, device)
    pipe = load_pipeline(root / "converted", device=dev, mode="fast", compile=compile, progress=rank == 0)
    with sequence_parallel(sp_models(pipe)):
        result = generate(family_name, preset=preset, request=request, device=str(dev), mode="fast",
                          compile=compile, model_dir=root, out=out if rank == 0 else None,
                          frames_dir=frames_dir if rank == 0 else None, hooks=hooks, progress=rank == 0)
    return result if rank == 0 else None


# ---- the local launcher ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_environment(rank: int, world: int, port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **NCCL_SAFE_ENV)
    # the ranks import this checkout's workbench, whatever the parent's sys.path came from
    checkout = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([checkout] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # CPU ranks share the host's cores (torchrun's default is 1 thread each)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // world)))
    return env


def launch(command: str, args: Any, sp: int) -> int:
    """Run `command` (a workbench.commands module name, e.g. "parity") with `args` as `sp` ranks
    on this host; rank 0's exit code."""
    payload = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    return launch_entry(["command", command, json.dumps(payload)], sp)


def launch_call(target: str, payload: dict[str, Any], sp: int) -> int:
    """Run `module:function(payload)` in `sp` ranks on this host (a sweep case, for instance)."""
    return launch_entry(["call", target, json.dumps(payload)], sp)


def launch_entry(entry: list[str], sp: int) -> int:
    port = free_port()
    procs: list[subprocess.Popen] = []
    errs: list[Any] = []
    try:
        for rank in range(sp):
            err = tempfile.TemporaryFile(mode="w+") if rank else None
            errs.append(err)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "workbench.api.sequence_parallel", *entry],
                env=rank_environment(rank, sp, port), stdout=None if rank == 0 else subprocess.DEVNULL,
                stderr=None if rank == 0 else err))
        failed = _wait(procs, GRACE_S)
        codes = [p.returncode for p in procs]
        if failed is None or (codes[0] in (1, 2) and not any(codes[1:])) or codes[0] == 2:
            return codes[0]  # 0, a failed verdict (1), or bad input rank 0 explained on this stderr (2)
        # the rank that says why (a WorkbenchError: 2), else the first other rank that failed
        culprit = next((r for r, c in enumerate(codes) if c == 2),
                       next((r for r, c in enumerate(codes) if r and c), failed))
        line = _last_line(errs[culprit]) if culprit else "see rank 0's error above"
        raise WorkbenchError(f"--sp {sp}: rank {culprit} exited with code {codes[culprit]}"
                             + (f": {line}" if line else ""))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for err in errs:
            if err is not None:
                err.close()


def _wait(procs: list[subprocess.Popen], grace_s: float = 10.0) -> int | None:
    """Wait for every rank; the first rank that failed (None when none did). A rank that fails
    leaves the others blocked in a collective: they get `grace_s`, then are stopped."""
    failed = None
    deadline = None
    while any(p.poll() is None for p in procs):
        if failed is None:
            failed = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), None)
            if failed is not None:
                deadline = time.monotonic() + grace_s
        if deadline is not None and time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            break
        time.sleep(0.05)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if failed is None:
        failed = next((i for i, p in enumerate(procs) if p.returncode != 0), None)
    return failed


def _last_line(err) -> str:
    if err is None:
        return ""
    err.seek(0)
    lines = [line.strip() for line in err.read().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _rank_main(argv: list[str]) -> int:
    """A rank started by `launch_entry`: `command NAME ARGS_JSON` (a workbench command with its
    parsed arguments) or `call MODULE:FUNCTION PAYLOAD_JSON`."""
    import argparse
    import importlib

    kind, target, payload = argv
    name = target if kind == "command" else target.partition(":")[2]
    debug = False
    try:
        if kind == "command":
            args = argparse.Namespace(**json.loads(payload))
            debug = getattr(args, "debug", False)
            return int(importlib.import_module(f"workbench.commands.{target}").run(args) or 0)
        module, _, function = target.partition(":")
        return int(getattr(importlib.import_module(module), function)(json.loads(payload)) or 0)
    except WorkbenchError as exc:
        if debug:
            raise
        print(f"workbench {name}: error: {exc}", file=sys.stderr)
        return 2
    except Exception:  # a crash (often: another rank went away mid-collective), not a verdict
        import traceback

        traceback.print_exc()
        return RANK_CRASHED
    finally:
        finish_rank()


if __name__ == "__main__":
    sys.exit(_rank_main(sys.argv[1:]))
