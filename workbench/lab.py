"""JupyterLab for the notebooks: on 127.0.0.1 only, behind a generated token.

One lab per state directory: its PID, port, token and command line are recorded in
`lab.json`; a new start stops the recorded one first, and stopping signals exactly that
process group (after checking the PID still runs the recorded command, since PIDs are
reused), never anything found by name. The token reaches the server through the
environment, not the command line, so `ps` does not show it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.errors import WorkbenchError

HOST = "127.0.0.1"
STATE_FILE = "lab.json"
LOG_FILE = "lab.log"


@dataclass
class Lab:
    pid: int
    port: int
    token: str
    root: str
    cmd: list[str]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/lab?token={self.token}"


def default_state_dir() -> Path:
    from workbench.references import cache_root

    return cache_root() / "lab"


def require_jupyterlab() -> None:
    if importlib.util.find_spec("jupyterlab") is None:
        raise WorkbenchError("JupyterLab is not installed; it is the optional `lab` extra: "
                             "pip install workbench[lab]  (in a checkout: pip install -e '.[lab]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def api_status(port: int, token: str | None, timeout: float = 2.0) -> int:
    """HTTP status of GET /api/status (200 with a valid token, 403 without)."""
    request = urllib.request.Request(f"http://{HOST}:{port}/api/status")
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def recorded(state_dir: Path) -> Lab | None:
    try:
        return Lab(**json.loads((state_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reaps it when this process started it
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _runs_command(pid: int, cmd: list[str]) -> bool:
    """Whether `pid` still runs the recorded command line (Linux /proc; elsewhere assume so)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if not proc.parent.exists():
        return _alive(pid)
    try:
        return proc.read_bytes().split(b"\0")[:-1] == [c.encode() for c in cmd]
    except OSError:
        return False


def stop_message(lab: Lab | None) -> str:
    """What `stop` did, in words: only a lab that was signalled is reported as stopped."""
    if lab is None:
        return "no recorded JupyterLab"
    outcome = getattr(lab, "outcome", "stopped")
    if outcome == "stopped":
        return f"stopped JupyterLab (pid {lab.pid}, port {lab.port})"
    if outcome == "foreign":
        return (f"did not stop pid {lab.pid}: it no longer runs the recorded JupyterLab (the PID was reused), "
                "so it was left alone; the stale record was removed")
    return f"JupyterLab (pid {lab.pid}, port {lab.port}) was not running; the stale record was removed"


def stop(state_dir: Path | None = None, timeout: float = 15.0) -> Lab | None:
    """Stop the recorded lab (its whole process group: the server and its kernels).

    The returned record's `outcome` says what happened: "stopped" (signalled), "not running"
    (the PID is gone) or "foreign" (the PID now runs another command: left alone). The record
    is removed in every case."""
    state_dir = Path(state_dir or default_state_dir())
    lab = recorded(state_dir)
    if lab is None:
        return None
    alive = _alive(lab.pid)
    lab.outcome = "not running" if not alive else "stopped" if _runs_command(lab.pid, lab.cmd) else "foreign"
    if lab.outcome == "stopped":
        os.killpg(lab.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(lab.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(lab.pid):
            os.killpg(lab.pid, signal.SIGKILL)
            while _alive(lab.pid):
                time.sleep(0.05)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return lab


def start(port: int | None = None, gpu: int | None = None, root: Path | None = None,
          state_dir: Path | None = None, timeout: float = 90.0, expose_app: bool = False) -> Lab:
    """Start JupyterLab in the background and return once its API answers.

    `expose_app` sets `window.jupyterapp` in the page (the browser test drives Lab's
    commands through it)."""
    from workbench.io import atomic_write_text
    from workbench.notebooks import REPO_ROOT, kernel_environment

    require_jupyterlab()
    state_dir = Path(state_dir or default_state_dir())
    stop(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    root = Path(root or REPO_ROOT).resolve()
    port = port or free_port()
    token = secrets.token_hex(24)
    # Kernels talk to the server over IPC sockets (files in the runtime directory), not TCP:
    # ipykernel warns that TCP without CurveZMQ keys is unencrypted.
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ip={HOST}", f"--port={port}",
           "--port-retries=0", f"--ServerApp.root_dir={root}", "--ServerApp.allow_remote_access=False",
           "--KernelManager.transport=ipc"]
    if expose_app:
        cmd.append("--LabApp.expose_app_in_browser=True")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI run as root; loopback + token still apply
    with kernel_environment():
        env = dict(os.environ, JUPYTER_TOKEN=token)
    env.pop("WORKBENCH_HEADLESS", None)  # a live frontend: interactive figures when ipympl is there
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    with open(state_dir / LOG_FILE, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(proc.pid, port, token, str(root), cmd)
    atomic_write_text(state_dir / STATE_FILE, json.dumps(asdict(lab), indent=1) + "\n")
    os.chmod(state_dir / STATE_FILE, 0o600)  # it holds the token
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (state_dir / STATE_FILE).unlink(missing_ok=True)
            tail = (state_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()[-5:]
            raise WorkbenchError(f"JupyterLab exited with code {proc.returncode} before answering; "
                                 f"{state_dir / LOG_FILE} ends with: {' | '.join(tail)}")
        try:
            if api_status(port, token) == 200:
                return lab
        except OSError:
            pass
        time.sleep(0.25)
    stop(state_dir)
    raise WorkbenchError(f"JupyterLab did not answer on port {port} within {timeout:.0f}s; see {state_dir / LOG_FILE}")
