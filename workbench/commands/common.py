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


def request_from_args(args: argparse.Namespace) -> dict[str, Any]:
    request = parse_assignments(args.assignments)
    if args.image is not None:
        request["image"] = args.image
    overrides = parse_overrides(args.stage_overrides)
    if overrides:
        request["stage_overrides"] = overrides
    return request
