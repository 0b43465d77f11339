"""Executors: run independent tasks and yield each one's result as it finishes.

A task is a small picklable callable with a `key` (its stable id, shown in progress and
errors), the `device` it runs on ('cpu', 'cuda', 'auto') and the `cpus` it uses; it
returns a picklable result or raises. One task's failure never stops the others: its
exception, or on Ray a worker that died more often than the retries allow, becomes that
task's `Done.error`. Callers persist each result as it arrives, so an interrupted batch
loses only the tasks that were still running.

`LocalExecutor` runs the tasks in this process, one after the other, or in a small thread
pool for tasks whose work happens in a subprocess (notebook kernels). `RayExecutor`
submits one Ray task per task with its resources, retries a task whose worker died, and
ships this checkout to the workers so that they run the driver's code.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from workbench.errors import ParameterError, WorkbenchError

EXECUTORS = ("local", "ray")
DEFAULT_MAX_RETRIES = 2
RAY_MISSING = "--executor ray needs Ray, an optional extra: pip install 'workbench[ray]'"
# Read by Ray once, when it is first imported: with "0" a local instance takes 127.0.0.1 as
# its node address and binds every server there. (The name says Windows/macOS; on Linux it
# is the switch that keeps a single-machine instance off the network.)
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
CHECKOUT = Path(__file__).resolve().parents[1]


class Task(Protocol):
    key: str
    device: str
    cpus: int

    def __call__(self) -> Any: ...


@dataclass
class Done:
    task: Any
    result: Any = None
    error: str = ""  # set when the task returned nothing: why, on one line


def describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _progress_bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="task", disable=not progress)


class LocalExecutor:
    """In this process (`jobs=1`), or `jobs` threads: right when each task's work runs in its
    own process (a notebook kernel); torch work shares one interpreter and stays at 1."""

    name = "local"

    def __init__(self, jobs: int = 1):
        if jobs < 1:
            raise ParameterError(f"--jobs {jobs}: expected 1 or more")
        self.jobs = jobs

    def run(self, tasks: Sequence[Task], desc: str = "", progress: bool = True) -> Iterator[Done]:
        bar = _progress_bar(len(tasks), desc, progress)
        try:
            if self.jobs == 1:
                for task in tasks:
                    yield Done(task, *_outcome(task))
                    bar.update()
                return
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                try:
                    running = {pool.submit(_outcome, task): task for task in tasks}
                    for future in as_completed(running):
                        yield Done(running[future], *future.result())
                        bar.update()
                finally:
                    pool.shutdown(cancel_futures=True)  # interrupted: start nothing new
        finally:
            bar.close()


def _outcome(task: Task) -> tuple[Any, str]:
    """(result, "") or (None, the error): a task's own failure is its result, on every
    executor, and travels as text (not every exception class survives pickling)."""
    try:
        return task(), ""
    except Exception as exc:
        return None, describe(exc)


# ---- Ray ---------------------------------------------------------------------------------
def import_ray(local: bool = False):
    """`local`: this process may start a local instance, so a first import of Ray reads
    LOOPBACK_SWITCH (a connection to a cluster must not: its workers call the driver back)."""
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_SWITCH, "0")
    try:
        import ray
    except ImportError:
        raise WorkbenchError(RAY_MISSING) from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to the cluster at `address`, or start a private local instance on loopback.

    The job's `runtime_env()` ships this checkout to the workers (Ray uploads directories
    only per job, not per task). True when this call started or connected Ray, so the
    caller shuts it down; False when this process was already connected (a notebook, a
    test): that connection, and its runtime_env, are used as they are.
    """
    ray = import_ray(local=not address)
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env(), log_to_driver=False)
        else:  # "local": a new instance, never one that `ray start` left running on this machine
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env(),
                     log_to_driver=False)
    except (ConnectionError, ValueError) as exc:
        where = f"--address {address}: cannot connect to Ray" if address else "cannot start a local Ray instance"
        raise WorkbenchError(f"{where}: {describe(exc)}") from None
    return True


def runtime_env() -> dict[str, Any]:
    """What every worker gets: this checkout as its working directory (Ray uploads it,
    leaving out what .gitignore lists) so it imports the driver's workbench, and the
    WORKBENCH_* settings (cache, trace). An installed workbench is not shipped: the cluster
    has it, like torch."""
    env: dict[str, Any] = {}
    if (CHECKOUT / "pyproject.toml").is_file():
        env["working_dir"] = str(CHECKOUT)
    settings = {k: v for k, v in os.environ.items() if k.startswith("WORKBENCH_")}
    if settings:
        env["env_vars"] = settings
    return env


class RayExecutor:
    """One Ray task per task: `cpus` CPUs and one GPU when it runs on CUDA ('auto' asks for
    one when the cluster has GPUs; Ray then sets CUDA_VISIBLE_DEVICES, so the task's
    `cuda` is the GPU Ray gave it). A task whose worker dies is retried `max_retries`
    times; an exception is not retried (it would fail the same way)."""

    name = "ray"

    def __init__(self, address: str | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 num_cpus: int | None = None):
        if max_retries < 0:
            raise ParameterError(f"--max-retries {max_retries}: expected 0 or more")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        import_ray(local=not self.address)  # refuse before any work when the extra is missing
        self.max_retries = max_retries
        self.num_cpus = num_cpus  # of a local instance; None: every core
        # task key -> its placement group as Ray reported it (strategy, bundles, node ids)
        self.placements: dict[str, dict[str, Any]] = {}

    def gpus(self, device: str, cluster_gpus: float) -> int:
        if device.startswith("cuda:"):
            raise ParameterError(f"device {device!r}: with --executor ray, Ray assigns the GPU; use 'cuda' or 'auto'")
        return int(device == "cuda" or (device == "auto" and cluster_gpus > 0))

    def placement(self, task: Task, num_gpus: int) -> dict[str, Any] | None:
        """A task of `sp` > 1 sequence-parallel ranks: one STRICT_PACK placement group holding all
        its GPUs (one per rank) and CPUs (`cpus` per rank) in one bundle, so they sit on one node
        (its ranks talk over NVLink / shared memory, never across nodes); None otherwise."""
        ranks = getattr(task, "sp", 1)
        if ranks == 1:
            return None
        bundle = {"CPU": task.cpus * ranks}
        if num_gpus:
            bundle["GPU"] = ranks
        return {"strategy": "STRICT_PACK", "bundles": [bundle]}

    def _place(self, ray, task: Task, spec: dict[str, Any], options: dict[str, Any]):
        """Reserve the placement group (refused when no node is large enough) and schedule in it."""
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        (bundle,) = spec["bundles"]
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if not any(all(res.get(k, 0) >= v for k, v in bundle.items()) for res in nodes):
            raise ParameterError(f"task {task.key}: {getattr(task, 'sp', 1)} sequence-parallel ranks need "
                                 f"{bundle} on one node; no node of the cluster has that")
        group = placement_group(spec["bundles"], strategy=spec["strategy"], name=f"{task.key}-sp")
        options.update(num_cpus=bundle["CPU"], num_gpus=bundle.get("GPU", 0),
                       scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0))
        return group

    def run(self, tasks: Sequence[Task], desc: str = "", progress: bool = True) -> Iterator[Done]:
        if not tasks:  # e.g. every case finished earlier: no cluster to start or reach
            return
        started = connect(self.address, self.num_cpus)
        ray = import_ray(local=not self.address)
        bar = _progress_bar(len(tasks), desc, progress)
        pending: dict[Any, Task] = {}
        groups: dict[Any, Any] = {}  # task ref -> its placement group (sequence-parallel tasks)
        refused: list[Done] = []
        try:
            remote = ray.remote(_outcome)
            cluster_gpus = ray.cluster_resources().get("GPU", 0)
            gpus = [self.gpus(task.device, cluster_gpus) for task in tasks]  # refuse before submitting any
            for task, num_gpus in zip(tasks, gpus):
                options = dict(num_cpus=task.cpus, num_gpus=num_gpus, max_retries=self.max_retries,
                               retry_exceptions=False, name=task.key)
                spec = self.placement(task, num_gpus)
                group = None
                if spec is not None:
                    try:
                        group = self._place(ray, task, spec, options)
                    except ParameterError as exc:
                        refused.append(Done(task, error=str(exc)))
                        continue
                ref = remote.options(**options).remote(task)
                pending[ref] = task
                if group is not None:
                    groups[ref] = group
            for done in refused:
                yield done
                bar.update()
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(ref)
                done = self._collect(ray, ref, task)
                if ref in groups:
                    self._release(ray, task, groups.pop(ref))
                yield done
                bar.update()
        finally:
            for ref in pending:  # interrupted: stop what is still queued or running
                ray.cancel(ref, force=True)
            for ref, group in groups.items():
                self._release(ray, pending.get(ref), group)
            bar.close()
            if started:
                ray.shutdown()

    def _release(self, ray, task, group) -> None:
        """Record where a placement group's bundles were (`placements[task.key]`), then free it."""
        from ray.util.placement_group import placement_group_table, remove_placement_group

        if task is not None:
            table = placement_group_table(group)
            self.placements[task.key] = {"strategy": table.get("strategy"),
                                         "bundles": list(table.get("bundles", {}).values()),
                                         "nodes": sorted(set(table.get("bundles_to_node_id", {}).values()))}
        remove_placement_group(group)

    def _collect(self, ray, ref, task: Task) -> Done:
        died = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError)
        try:
            return Done(task, *ray.get(ref))
        except died as exc:  # on every attempt
            return Done(task, error=f"gave up after {self.max_retries + 1} attempts: {describe(exc)}")
        except ray.exceptions.RayError as exc:  # e.g. the runtime env could not be set up
            return Done(task, error=describe(exc))


def make_executor(name: str = "local", *, address: str | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                  jobs: int = 1):
    if name == "local":
        if address:
            raise ParameterError("--address is the Ray cluster to use: it needs --executor ray")
        return LocalExecutor(jobs)
    if name == "ray":
        return RayExecutor(address, max_retries)
    raise ParameterError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")
