"""Batch runner: execute a family's parameterized notebooks headless with papermill.

Each executed notebook is written next to a `<name>.run.json` stamp whose fingerprint
covers the notebook source, its parameters, the workbench sources and the library
versions; a notebook whose stamp matches is skipped unless forced. A failing notebook is
recorded with its failing cell and the remaining notebooks still run. The run directory
gets a `summary.txt` and an `index.html` that links the executed notebooks and the files
they wrote.

The kernel is the `python3` kernel spec, started in the run directory (the notebooks'
relative `out_dir` lands there). It inherits this process's environment, so
`kernel_environment()` puts this checkout on PYTHONPATH and drops MPLBACKEND (a
non-inline backend such as agg strips the figures from the outputs).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from workbench.errors import ParameterError, WorkbenchError

KERNEL = "python3"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
STAMP_SUFFIX = ".run.json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
DEFAULT_JOBS = min(2, os.cpu_count() or 1)


@dataclass
class NotebookResult:
    family: str
    name: str              # notebook stem, e.g. 01_pipeline_wiring
    status: str            # ok | skipped | failed
    seconds: float | None
    output: Path           # the executed notebook
    detail: str = ""       # for a failure: "cell N (In [k]): Error: message"


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


# ---- execution --------------------------------------------------------------------------
@contextmanager
def kernel_environment() -> Iterator[None]:
    """Kernels inherit os.environ: run them against this checkout, with the inline backend."""
    saved = dict(os.environ)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in paths if p != str(REPO_ROOT)])
    os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_kernel() -> None:
    """Fail early, once, when the kernel spec the notebooks name is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        raise WorkbenchError(f"no Jupyter kernel named {KERNEL!r}; register this environment's with "
                             f"`{sys.executable} -m ipykernel install --sys-prefix --name {KERNEL}`") from None


def describe_failure(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        evalue = (exc.evalue or "").strip().splitlines()
        return f"cell {exc.cell_index} (In [{exc.exec_count}]): {exc.ename}: {evalue[0] if evalue else ''}".rstrip()
    return f"{type(exc).__name__}: {exc}".strip()


def execute(path: Path, output: Path, parameters: Mapping[str, Any], cwd: Path) -> str:
    """Run one notebook into `output`, written whole also when it fails; '' or the failure.

    A notebook that failed before papermill wrote anything (e.g. the kernel did not start)
    is left as its source, so the link in the index still opens."""
    import papermill

    from workbench.io import atomic_path

    with atomic_path(output) as tmp:
        try:
            # The kernel starts in `cwd` through nbclient's resources; papermill's own `cwd=`
            # would os.chdir() the whole process, which parallel notebooks (threads) must not.
            papermill.execute_notebook(str(path), str(tmp), parameters=dict(parameters), kernel_name=KERNEL,
                                       progress_bar=False, log_output=False,
                                       resources={"metadata": {"path": str(cwd)}})
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


def run_notebook(family: str, path: Path, parameters: Mapping[str, Any], out: Path, force: bool) -> NotebookResult:
    """One notebook: skipped when its stamp is current, else executed and stamped."""
    from workbench.io import atomic_write_text

    output, stamp = out / path.name, out / f"{path.stem}{STAMP_SUFFIX}"
    key = fingerprint(path, parameters)
    previous = _read_stamp(stamp)
    if not force and output.is_file() and previous.get("fingerprint") == key and previous.get("status") == "ok":
        return NotebookResult(family, path.stem, "skipped", None, output, "up to date (--force reruns it)")
    start = time.perf_counter()
    failure = execute(path, output, parameters, cwd=out)
    result = NotebookResult(family, path.stem, "failed" if failure else "ok", time.perf_counter() - start,
                            output, failure)
    atomic_write_text(stamp, json.dumps({"fingerprint": key, "parameters": dict(parameters),
                                         **{k: v for k, v in asdict(result).items() if k != "output"}},
                                        indent=1, default=str) + "\n")
    return result


def run_family(family: str, selection: Sequence[str] | None = None, settings: Mapping[str, Any] | None = None,
               out: Path | None = None, force: bool = False, progress: bool = True, jobs: int = 1,
               notebooks_dir: Path = NOTEBOOKS_DIR, strict: bool = True) -> list[NotebookResult]:
    """Execute the selected notebooks for `family` into `out` (default runs/<family>).

    Notebooks are independent (each has its own kernel), so `jobs` > 1 runs that many at
    once: a fresh kernel spends most of its time importing torch and diffusers on one core.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    from workbench import registry

    registry.get_family(family)
    if jobs < 1:
        raise ParameterError(f"--jobs {jobs}: expected 1 or more")
    out = Path(out or Path("runs") / family).resolve()
    paths = discover(selection, notebooks_dir)
    parameters = notebook_parameters(paths, family, dict(settings or {}), strict)
    check_kernel()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[Path, NotebookResult] = {}
    bar = tqdm(total=len(paths), desc=family, unit="notebook", disable=not progress)
    with kernel_environment(), ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(run_notebook, family, p, parameters[p], out, force): p for p in paths}
        for done in as_completed(running):
            result = results[running[done]] = done.result()
            bar.update()
            if progress:
                tqdm.write(status_line(result))
    bar.close()
    ordered = [results[p] for p in paths]
    write_index(out, ordered)
    return ordered


# ---- reporting -------------------------------------------------------------------------
def status_line(r: NotebookResult) -> str:
    seconds = "-" if r.seconds is None else f"{r.seconds:.1f}s"
    text = f"{r.family}/{r.name}: {r.status.upper() if r.status == 'failed' else r.status} ({seconds})"
    return text + (f" {r.detail}" if r.detail and r.status == "failed" else "")


def summary_table(results: Sequence[NotebookResult]) -> str:
    rows = [("family", "notebook", "status", "seconds", "detail")]
    rows += [(r.family, r.name, r.status.upper() if r.status == "failed" else r.status,
              "-" if r.seconds is None else f"{r.seconds:.1f}", r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * len(lines[0].rstrip()))
    return "\n".join(line.rstrip() for line in lines)


def _written_files(directory: Path, exclude: set[Path]) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p not in exclude
                  and not p.name.startswith(".") and not p.name.endswith(STAMP_SUFFIX) and p.name not in ("index.html", "summary.txt"))


def write_index(directory: Path, results: Sequence[NotebookResult]) -> Path:
    """`index.html` (a status table linking the executed notebooks, then the files they
    wrote) and `summary.txt` (the same table as text)."""
    from workbench.io import atomic_write_text

    directory = Path(directory)
    atomic_write_text(directory / "summary.txt", summary_table(results) + "\n")
    rows = []
    for r in results:
        link = os.path.relpath(r.output, directory)
        seconds = "-" if r.seconds is None else f"{r.seconds:.1f}"
        rows.append(f"<tr class='{r.status}'><td>{html.escape(r.family)}</td>"
                    f"<td><a href='{html.escape(link)}'>{html.escape(r.name)}</a></td>"
                    f"<td>{r.status}</td><td>{seconds}</td><td>{html.escape(r.detail)}</td></tr>")
    files = _written_files(directory, {r.output for r in results})
    links = "".join(f"<li><a href='{html.escape(os.path.relpath(f, directory))}'>"
                    f"{html.escape(os.path.relpath(f, directory))}</a></li>" for f in files)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>workbench run</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 10px;text-align:left}}
tr.failed{{background:#fdd}} tr.ok{{background:#efe}}</style></head>
<body><h1>workbench run</h1>
<table><tr><th>family</th><th>notebook</th><th>status</th><th>seconds</th><th>detail</th></tr>
{chr(10).join(rows)}
</table>
<h2>Reports and media</h2><ul>{links or '<li>none</li>'}</ul>
</body></html>
"""
    return atomic_write_text(directory / "index.html", page)


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


def bless_notebooks(family: str, progress: bool = True, notebooks_dir: Path = NOTEBOOKS_DIR,
                    jobs: int = DEFAULT_JOBS) -> Path:
    """Execute every notebook on CPU and swap them into reference_outputs/notebooks/<family>/
    whole: a failing notebook leaves the blessed copies as they were."""
    from workbench.io import atomic_directory

    target = reference_dir(family)
    with atomic_directory(target) as tmp:
        results = run_family(family, settings={"device": "cpu"}, out=tmp, force=True, progress=progress,
                             jobs=jobs, notebooks_dir=notebooks_dir, strict=False)
        failed = [r for r in results if r.status != "ok"]
        if failed:
            raise WorkbenchError("not blessed, notebooks failed: " + "; ".join(f"{r.name}: {r.detail}" for r in failed))
        executed = {r.output for r in results}
        for path in sorted(tmp.rglob("*"), reverse=True):
            if path.is_file() and path not in executed:
                path.unlink()
            elif path.is_dir():
                path.rmdir()
        for path in executed:
            normalize(path)
    return target
