"""Batch runner: execute a family's parameterized notebooks headless with papermill.

Each executed notebook is written next to a `<name>.run.json` stamp whose fingerprint
covers the notebook source, its parameters, the workbench sources and the library
versions; a notebook whose stamp matches is skipped unless forced. A failing notebook is
recorded with its failing cell and the remaining notebooks still run. The run directory
gets a `summary.txt` and an `index.html`: per notebook its status, the verdict and first
divergence it printed, key parameters, date, commit, a thumbnail of its last figure and a
link to an HTML rendering (`annotate`), then the files the notebooks wrote.

Kernels run over IPC sockets and are not interrupted at shutdown (`_kernel_manager_class`):
no TCP-without-encryption warning, no "KeyboardInterrupt caught in kernel" for a notebook
that passed.

Each (family, notebook) is one task for an executor (workbench/executors.py): threads in
this process by default, or one Ray task each. The kernel is the `python3` kernel spec,
started in the run directory (the notebooks' relative `out_dir` lands
there). It inherits the environment of the process that starts it, so
`kernel_environment()` puts this checkout on PYTHONPATH, drops MPLBACKEND (a
non-inline backend such as agg strips the figures from the outputs) and sets
WORKBENCH_HEADLESS (static figures: `notebook_helpers.figure_backend`).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import sys
import threading
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from queue import Empty
from typing import Any, Iterator, Mapping, Sequence

from workbench.errors import ParameterError, WorkbenchError
from workbench.run_report import STAMP_SUFFIX, RunResult, status_line, write_index

KERNEL = "python3"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
DEFAULT_JOBS = min(2, os.cpu_count() or 1)


# ---- selection and parameters --------------------------------------------------------------
def discover(selection: Sequence[str] | None = None, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Notebooks in name order; `selection` holds prefixes such as "01" or full stems."""
    available = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not available:
        raise WorkbenchError(f"{notebooks_dir}: no notebooks (expected NN_name.ipynb files)")
    if not selection:
        return available
    chosen = []
    for item in selection:
        matches = [p for p in available if p.stem == item or p.stem.split("_", 1)[0] == item]
        if not matches:
            raise ParameterError(f"--notebooks {item!r}: no such notebook; available: "
                                 f"{', '.join(p.stem for p in available)}")
        chosen += [m for m in matches if m not in chosen]
    return sorted(chosen)


def declared_parameters(path: Path) -> dict[str, Any]:
    """The names and defaults in the notebook's `parameters` cell."""
    import papermill

    return {name: info["default"] for name, info in papermill.inspect_notebook(str(path)).items()}


def parse_settings(items: Sequence[str] | None) -> dict[str, Any]:
    """`["steps=4", "preset=tiny-ci"]` -> {"steps": 4, "preset": "tiny-ci"} (JSON when it parses)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"--set {item!r}: expected KEY=VALUE")
        if key == "family":
            raise ParameterError("--set family=...: the family is the FAMILY argument")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def notebook_parameters(paths: Sequence[Path], family: str, settings: Mapping[str, Any],
                        strict: bool = True) -> dict[Path, dict[str, Any]]:
    """Per notebook: the family plus the settings it declares. With `strict`, a setting no
    selected notebook declares is an error (papermill would inject it and nothing read it)."""
    declared = {p: declared_parameters(p) for p in paths}
    known = sorted(set().union(*declared.values()))
    unknown = [k for k in settings if k not in known]
    if strict and unknown:
        raise ParameterError(f"--set {', '.join(unknown)}: no selected notebook declares "
                             f"{'it' if len(unknown) == 1 else 'them'}; declared parameters: {', '.join(known)}")
    return {p: {"family": family, **{k: v for k, v in settings.items() if k in declared[p]}} for p in paths}


def fingerprint(path: Path, parameters: Mapping[str, Any]) -> str:
    """What decides whether an executed notebook is still current."""
    from workbench.references import versions

    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    h.update(json.dumps(versions(), sort_keys=True).encode())
    for source in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(str(source.relative_to(PACKAGE_DIR)).encode() + b"\0" + source.read_bytes())
    return h.hexdigest()


def notebook_device(path: Path, parameters: Mapping[str, Any]) -> str:
    """Where the notebook computes: its `device` as set, else as its parameters cell declares."""
    if "device" in parameters:
        return str(parameters["device"])
    try:
        return str(ast.literal_eval(declared_parameters(path).get("device", "'cpu'")))
    except (ValueError, SyntaxError):
        return "cpu"


# ---- execution --------------------------------------------------------------------------
_environment_lock = threading.Lock()
_environment_users = 0
_environment_saved: dict[str, str] = {}


@contextmanager
def kernel_environment() -> Iterator[None]:
    """Kernels inherit os.environ: run them against this checkout, with the inline backend.

    Notebooks running in threads each enter it: the first sets it, the last restores it."""
    global _environment_users, _environment_saved
    with _environment_lock:
        if not _environment_users:
            _environment_saved = dict(os.environ)
            paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in paths if p != str(REPO_ROOT)])
            os.environ.pop("MPLBACKEND", None)
            os.environ["WORKBENCH_HEADLESS"] = "1"  # notebook_helpers.figure_backend: static figures
        _environment_users += 1
    try:
        yield
    finally:
        with _environment_lock:
            _environment_users -= 1
            if not _environment_users:
                os.environ.clear()
                os.environ.update(_environment_saved)


def check_kernel() -> None:
    """Fail early, once, when the kernel spec the notebooks name is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        raise WorkbenchError(f"no Jupyter kernel named {KERNEL!r}; register this environment's with "
                             f"`{sys.executable} -m ipykernel install --sys-prefix --name {KERNEL}`") from None


def _kernel_manager_class():
    """nbclient's kernel manager: `sliced_poll_kernel_manager()`'s, made quiet: IPC
    transport (ipykernel warns that TCP without CurveZMQ keys is unencrypted), sockets under
    a private temporary directory, and no SIGINT at shutdown (jupyter_client interrupts
    before the shutdown request, and a kernel idle in its event loop logs "KeyboardInterrupt
    caught in kernel" for a notebook that passed)."""
    global _QuietKernelManager
    if _QuietKernelManager is None:
        import tempfile
        import uuid

        from traitlets import Unicode, default

        class QuietKernelManager(sliced_poll_kernel_manager()):
            transport = Unicode("ipc")

            @default("ip")
            def _ip_default(self):
                directory = Path(tempfile.mkdtemp(prefix="wb-kernel-"))
                return str(directory / f"kernel-{uuid.uuid4().hex[:8]}")

            async def _async_interrupt_kernel(self):
                if self.shutting_down:
                    return
                await super()._async_interrupt_kernel()

            async def _async_cleanup_resources(self, restart: bool = False):
                await super()._async_cleanup_resources(restart=restart)
                if not restart:
                    import shutil

                    shutil.rmtree(Path(self.ip).parent, ignore_errors=True)

        _QuietKernelManager = QuietKernelManager
    return _QuietKernelManager


_QuietKernelManager = None


def describe_failure(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        evalue = (exc.evalue or "").strip().splitlines()
        return f"cell {exc.cell_index} (In [{exc.exec_count}]): {exc.ename}: {evalue[0] if evalue else ''}".rstrip()
    return f"{type(exc).__name__}: {exc}".strip()


#: Longest wait of one poll on a kernel channel before polling again (seconds).
POLL_SLICE_S = 1.0


@functools.cache
def sliced_poll_kernel_manager():
    """An AsyncKernelManager whose clients never wait on a kernel socket without a deadline.

    nbclient waits for a cell's reply with `get_msg(timeout=None)`, and pyzmq's asyncio poll
    can miss the wake-up of a message that is already queued (nbclient#312): on a loaded
    machine a widget cell of 02 then hung forever with its kernel idle. A poll with a timeout
    re-checks the socket when the timeout fires, so waiting in one-second slices picks the
    message up within a second; an explicit timeout is passed through unchanged."""
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Type

    class SlicedPollChannel(AsyncZMQSocketChannel):
        async def get_msg(self, timeout: float | None = None):
            if timeout is not None:
                return await super().get_msg(timeout)
            while True:
                try:
                    return await super().get_msg(POLL_SLICE_S)
                except Empty:
                    continue

    class SlicedPollClient(AsyncKernelClient):
        shell_channel_class = Type(SlicedPollChannel)
        iopub_channel_class = Type(SlicedPollChannel)

    class SlicedPollKernelManager(AsyncKernelManager):
        client_factory = Type(SlicedPollClient)

    return SlicedPollKernelManager


def execute(path: Path, output: Path, parameters: Mapping[str, Any], cwd: Path) -> str:
    """Run one notebook into `output`, written whole also when it fails; '' or the failure.

    The kernel starts in `cwd` through nbclient's `resources` path, not papermill's `cwd=`:
    that one chdirs the whole process, and notebooks run in threads would start their
    kernels in each other's directories. A notebook that failed before papermill wrote
    anything (e.g. the kernel did not start) is left as its source, so the link in the
    index still opens."""
    import papermill

    from workbench.io import atomic_path

    with atomic_path(output) as tmp:
        try:
            # The kernel starts in `cwd` through nbclient's resources; papermill's own `cwd=`
            # would os.chdir() the whole process, which parallel notebooks (threads) must not.
            papermill.execute_notebook(str(path), str(tmp), parameters=dict(parameters), kernel_name=KERNEL,
                                       progress_bar=False, log_output=False,
                                       resources={"metadata": {"path": str(cwd)}},
                                       kernel_manager_class=_kernel_manager_class())
        except Exception as exc:  # the notebook's error, or papermill's (kernel died, bad parameters)
            if not tmp.stat().st_size:
                tmp.write_bytes(path.read_bytes())
            return describe_failure(exc)
    return ""


def _read_stamp(stamp: Path) -> dict[str, Any]:
    try:
        return json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


_VERDICT_LINE = re.compile(r"^verdict: (PASS|FAIL)\b", re.M)
_DIVERGENCE = re.compile(r"\bfirst divergence(?: at|:) ([^:\n]+)")
_ANNOTATIONS = ("verdict", "first_divergence", "key_parameters", "date", "commit", "thumbnail", "html")


@lru_cache(maxsize=1)
def checkout_commit() -> str:
    """This checkout's short commit, "-dirty" when it has uncommitted changes ("" outside git)."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=30)

    head = git("rev-parse", "--short=10", "HEAD")
    if head.returncode != 0:
        return ""
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


def _output_texts(nb) -> list[str]:
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                texts.append(f"{output.get('ename')}: {output.get('evalue', '')}")
            else:
                texts.append(output.get("data", {}).get("text/plain", ""))
    return texts


def notebook_key_parameters(path: Path, nb) -> dict[str, Any]:
    """The parameters the notebook ran with (declared defaults, then injected), less the
    family, paths and unset (None) values."""
    values: dict[str, Any] = {}
    for name, text in declared_parameters(path).items():
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = text
    values.update(nb.metadata.get("papermill", {}).get("parameters", {}))
    return {k: v for k, v in values.items() if v is not None and k not in ("family", "out_dir", "store")}


def render_html(nb, path: Path) -> Path:
    """The executed notebook as a self-contained HTML page (nbconvert, images inline).

    The widget state is left out of the rendering: with it nbconvert draws widgets through
    a script from a CDN; without it each widget output shows its static snapshot."""
    import copy

    from nbconvert import HTMLExporter

    from workbench.io import atomic_write_text

    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(nb)
    return atomic_write_text(path, body)


def annotate(result: RunResult, path: Path, out: Path) -> RunResult:
    """What the run index shows of an executed notebook: its verdict and first divergence
    (from what it printed), key parameters, date, commit, a thumbnail of its last figure and
    an HTML rendering. A notebook that cannot be read keeps only its status."""
    import base64
    from datetime import datetime, timezone

    import nbformat

    from workbench.run_report import THUMB_SUFFIX

    result.date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    result.commit = checkout_commit()
    try:
        nb = nbformat.read(result.output, as_version=4)
    except (OSError, ValueError) as exc:  # nbformat raises ValueError subclasses for bad JSON
        result.detail = result.detail or f"executed notebook unreadable: {exc}"
        return result
    result.key_parameters = notebook_key_parameters(path, nb)
    text = "\n".join(_output_texts(nb))
    verdicts = _VERDICT_LINE.findall(text)
    result.verdict = verdicts[-1] if verdicts else ""
    divergence = [d.strip() for d in _DIVERGENCE.findall(text) if d.strip() != "none"]
    result.first_divergence = divergence[0] if divergence else ""
    pngs = [o["data"]["image/png"] for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    if pngs:
        from workbench.io import atomic_path

        result.thumbnail = out / f"{path.stem}{THUMB_SUFFIX}"
        with atomic_path(result.thumbnail) as tmp:
            tmp.write_bytes(base64.b64decode(pngs[-1]))
    result.html = render_html(nb, out / f"{path.stem}.html")
    return result


def run_notebook(family: str, path: Path, parameters: Mapping[str, Any], out: Path, force: bool) -> RunResult:
    """One notebook: skipped when its stamp is current (the index keeps what the stamp
    recorded of it), else executed, annotated for the index and stamped."""
    from workbench.io import atomic_write_text

    output, stamp = out / path.name, out / f"{path.stem}{STAMP_SUFFIX}"
    key = fingerprint(path, parameters)
    previous = _read_stamp(stamp)
    if not force and output.is_file() and previous.get("fingerprint") == key and previous.get("status") == "ok":
        kept = {k: previous[k] for k in _ANNOTATIONS if previous.get(k) is not None}
        for name in ("thumbnail", "html"):
            if name in kept:
                kept[name] = Path(kept[name])
        return RunResult(family, path.stem, "skipped", None, output, "up to date (--force reruns it)", **kept)
    start = time.perf_counter()
    failure = execute(path, output, parameters, cwd=out)
    result = RunResult(family, path.stem, "failed" if failure else "ok", time.perf_counter() - start,
                       output, failure)
    annotate(result, path, out)
    atomic_write_text(stamp, json.dumps({"fingerprint": key, "parameters": dict(parameters),
                                         **{k: v for k, v in asdict(result).items() if k != "output"}},
                                        indent=1, default=str) + "\n")
    return result


@dataclass(frozen=True)
class NotebookTask:
    """One notebook of one family, for an executor. A notebook inside this checkout is
    named relative to it, so a Ray worker finds it in the checkout shipped to it."""

    family: str
    notebook: Path
    parameters: dict[str, Any]
    out: Path
    force: bool = False
    device: str = "cpu"
    cpus: int = 1

    @property
    def key(self) -> str:
        return f"{self.family}/{self.notebook.stem}"

    def __call__(self) -> RunResult:
        with kernel_environment():
            return run_notebook(self.family, REPO_ROOT / self.notebook, self.parameters, self.out, self.force)


def run_notebooks(outs: Mapping[str, Path], selection: Sequence[str] | None = None,
                  settings: Mapping[str, Any] | None = None, force: bool = False, progress: bool = True,
                  executor=None, notebooks_dir: Path = NOTEBOOKS_DIR,
                  strict: bool = True) -> dict[str, list[RunResult]]:
    """Execute the selected notebooks of each family (family -> its run directory) as one
    batch of tasks on `executor` (default: `DEFAULT_JOBS` kernels at once in this process);
    each run directory gets its summary.txt and index.html."""
    from workbench import registry
    from workbench.executors import LocalExecutor

    for family in outs:
        registry.get_family(family)
    paths = discover(selection, notebooks_dir)
    parameters = {family: notebook_parameters(paths, family, dict(settings or {}), strict) for family in outs}
    check_kernel()
    tasks = []
    for family, out in outs.items():
        out = Path(out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        for path, values in parameters[family].items():
            name = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
            tasks.append(NotebookTask(family, name, values, out, force, notebook_device(path, values)))
    results: dict[str, RunResult] = {}
    desc = next(iter(outs)) if len(outs) == 1 else f"{len(outs)} families"
    for done in (executor or LocalExecutor(DEFAULT_JOBS)).run(tasks, desc=desc, progress=progress):
        task = done.task
        result = results[task.key] = done.result or RunResult(task.family, task.notebook.stem, "failed", None,
                                                              task.out / task.notebook.name, done.error)
        if progress:
            from tqdm.auto import tqdm

            tqdm.write(status_line(result))
    by_family = {family: [results[t.key] for t in tasks if t.family == family] for family in outs}
    for family, out in outs.items():
        write_index(Path(out), by_family[family])
    return by_family


def run_family(family: str, selection: Sequence[str] | None = None, settings: Mapping[str, Any] | None = None,
               out: Path | None = None, force: bool = False, progress: bool = True, jobs: int = 1,
               notebooks_dir: Path = NOTEBOOKS_DIR, strict: bool = True, executor=None) -> list[RunResult]:
    """Execute the selected notebooks for `family` into `out` (default runs/<family>).

    Notebooks are independent (each has its own kernel), so `jobs` > 1 runs that many at
    once: a fresh kernel spends most of its time importing torch and diffusers on one core.
    """
    from workbench.executors import LocalExecutor

    out = Path(out or Path("runs") / family)
    return run_notebooks({family: out}, selection, settings, force, progress, executor or LocalExecutor(jobs),
                         notebooks_dir, strict)[family]


# ---- blessed copies for nbval --------------------------------------------------------------
def reference_dir(family: str) -> Path:
    from workbench.parity.golden import reference_outputs_root

    return reference_outputs_root() / "notebooks" / family


def normalize(path: Path) -> None:
    """Drop what changes on every execution (timestamps, paths, random ids, widget state) so
    a blessed notebook's diff shows changed outputs, not noise."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    run = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {k: run[k] for k in ("default_parameters", "parameters", "version") if k in run}
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is not None:
                view["model_id"] = "not-stored"  # its state is dropped above; nbval skips this field
    nbformat.write(nb, path)


def bless_notebooks(family: str, out: Path, progress: bool = True, notebooks_dir: Path = NOTEBOOKS_DIR,
                    jobs: int = DEFAULT_JOBS) -> Path:
    """Execute every notebook on CPU into `out` (a staging directory that `workbench bless`
    swaps in with the goldens), normalized and stamped with the numeric environment; a
    failing notebook raises and nothing is swapped in."""
    import nbformat

    from workbench.parity.numeric_env import describe

    results = run_family(family, settings={"device": "cpu"}, out=out, force=True, progress=progress,
                         jobs=jobs, notebooks_dir=notebooks_dir, strict=False)
    failed = [r for r in results if r.status != "ok"]
    if failed:
        raise WorkbenchError("not blessed, notebooks failed: " + "; ".join(f"{r.name}: {r.detail}" for r in failed))
    executed = {r.output for r in results}
    for path in sorted(out.rglob("*"), reverse=True):
        if path.is_file() and path not in executed:
            path.unlink()
        elif path.is_dir():
            path.rmdir()
    environment = describe()
    for path in executed:
        normalize(path)
        nb = nbformat.read(path, as_version=4)
        nb.metadata.setdefault("workbench", {})["numeric_environment"] = environment
        nbformat.write(nb, path)
    return out
