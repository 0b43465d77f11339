"""Arguments shared by the commands that run a family (one definition, not one per command)."""

from __future__ import annotations

import argparse
from typing import Any

from workbench.api.params import parse_assignments
from workbench.api.presets import parse_overrides


def add_request_args(p: argparse.ArgumentParser, device_default: str = "auto") -> None:
    p.add_argument("family", help="registered family name (see `workbench families`)")
    p.add_argument("--preset", help="preset name (default: the family's default preset)")
    p.add_argument("--set", dest="assignments", action="append", metavar="KEY=VALUE",
                   help="override a SamplingParam field (repeatable), e.g. --set seed=3")
    p.add_argument("--override", dest="stage_overrides", action="append", metavar="STAGE.KEY=VALUE",
                   help="override a stage setting the preset declares, e.g. DenoisingStage.cfg=batched")
    p.add_argument("--image", metavar="PATH", help="conditioning image for image-to-video families (SamplingParam.image)")
    p.add_argument("--model-dir", help="a build-reference output (official/ + converted/); default: cached tiny build")
    p.add_argument("--device", default=device_default, help="auto | cpu | cuda[:N]")
    p.add_argument("--compile", action="store_true", help="fast mode: torch.compile the denoiser")


SP_HELP = ("sequence parallelism: the native Wan DiT's tokens sharded over N ranks on this host (one GPU each "
           "on CUDA, gloo processes on CPU); starts the ranks itself, or runs as a rank under torchrun (default: 1)")


def add_sp_arg(p: argparse.ArgumentParser, help: str = SP_HELP) -> None:
    p.add_argument("--sp", type=int, default=1, metavar="N", help=help)


def run_sequence_parallel(command: str, args: argparse.Namespace, rank_run) -> int:
    """`--sp N` > 1: inside a rank (torchrun, or started by us) run `rank_run(args)`; otherwise
    check the request here, then start the N ranks on this host."""
    from workbench import registry
    from workbench.api import sequence_parallel as sp

    if sp.in_rank():
        return rank_run(args)
    family = registry.get_family(args.family)
    sp.check_request(family, args.sp, args.mode, args.device, args.model_dir)
    return sp.launch(command, args, args.sp)


def request_from_args(args: argparse.Namespace) -> dict[str, Any]:
    request = parse_assignments(args.assignments)
    if args.image is not None:
        request["image"] = args.image
    overrides = parse_overrides(args.stage_overrides)
    if overrides:
        request["stage_overrides"] = overrides
    return request


def add_executor_args(p: argparse.ArgumentParser) -> None:
    from workbench.executors import DEFAULT_MAX_RETRIES, EXECUTORS

    p.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="local: this machine (default); ray: one Ray task per item (pip install 'workbench[ray]')")
    p.add_argument("--address", help="with --executor ray: the cluster to use, e.g. ray://head:10001 or head:6379 "
                                      "(default: $RAY_ADDRESS, else a private local instance on 127.0.0.1)")
    p.add_argument("--max-retries", type=int, default=DEFAULT_MAX_RETRIES,
                   help="with --executor ray: reruns of a task whose worker died (default: %(default)s)")


def executor_from_args(args: argparse.Namespace, jobs: int = 1):
    from workbench.executors import make_executor

    return make_executor(args.executor, address=args.address, max_retries=args.max_retries, jobs=jobs)
