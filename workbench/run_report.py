"""The report of a batch run: `summary.txt` and `index.html` in the run directory.

One writer for every batch command (`workbench run` over notebooks, `workbench sweep`
over parity or generation cases), so a team reads every run the same way: one row per
item with its status, seconds and, for a failure, what failed; then links to the files
the items wrote.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

STAMP_SUFFIX = ".run.json"  # a notebook's skip-when-current stamp: bookkeeping, not a report
REPORT_FILES = ("index.html", "summary.txt")


@dataclass
class RunResult:
    family: str
    name: str              # the item: a notebook stem (01_pipeline_wiring) or a sweep case (seed=0 ...)
    status: str            # ok | skipped | failed
    seconds: float | None
    output: Path           # what the row links: the executed notebook, the case's JSON
    detail: str = ""       # for a failure: what failed (the notebook's cell, the first divergence)


def status_line(r: RunResult) -> str:
    seconds = "-" if r.seconds is None else f"{r.seconds:.1f}s"
    text = f"{r.family}/{r.name}: {r.status.upper() if r.status == 'failed' else r.status} ({seconds})"
    return text + (f" {r.detail}" if r.detail and r.status == "failed" else "")


def summary_table(results: Sequence[RunResult], item: str = "notebook") -> str:
    rows = [("family", item, "status", "seconds", "detail")]
    rows += [(r.family, r.name, r.status.upper() if r.status == "failed" else r.status,
              "-" if r.seconds is None else f"{r.seconds:.1f}", r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * len(lines[0].rstrip()))
    return "\n".join(line.rstrip() for line in lines)


def _written_files(directory: Path, exclude: set[Path]) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p not in exclude
                  and not p.name.startswith(".") and not p.name.endswith(STAMP_SUFFIX) and p.name not in REPORT_FILES)


def write_index(directory: Path, results: Sequence[RunResult], item: str = "notebook",
                title: str = "workbench run") -> Path:
    """`index.html` (a status table linking each item's output, then the other files the
    items wrote) and `summary.txt` (the same table as text)."""
    from workbench.io import atomic_write_text

    directory = Path(directory)
    atomic_write_text(directory / "summary.txt", summary_table(results, item) + "\n")
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
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 10px;text-align:left}}
tr.failed{{background:#fdd}} tr.ok{{background:#efe}}</style></head>
<body><h1>{html.escape(title)}</h1>
<table><tr><th>family</th><th>{html.escape(item)}</th><th>status</th><th>seconds</th><th>detail</th></tr>
{chr(10).join(rows)}
</table>
<h2>Reports and media</h2><ul>{links or '<li>none</li>'}</ul>
</body></html>
"""
    return atomic_write_text(directory / "index.html", page)
