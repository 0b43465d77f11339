"""A rank job for the launcher test: rank 1 fails, rank 0 waits in a collective it never leaves."""

from __future__ import annotations

import os


def rank_1_fails(payload):
    import torch.distributed as dist

    from workbench.errors import WorkbenchError

    dist.init_process_group("gloo")
    if int(os.environ["RANK"]) == 1:
        raise WorkbenchError(payload["message"])
    dist.barrier()  # never returns: rank 1 is gone
    return 0
