"""`workbench lab`: loopback only, token required, PID-file based stop, kernels see this checkout."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.notebooks.conftest import REPO
from workbench import lab as lab_mod
from workbench.errors import WorkbenchError


def test_missing_extra_names_the_install_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jupyterlab" else real(name, *a))
    with pytest.raises(WorkbenchError, match=r"pip install workbench\[lab\]"):
        lab_mod.start(state_dir=tmp_path)
    assert not (tmp_path / lab_mod.STATE_FILE).exists()


def test_stop_never_signals_a_process_that_does_not_run_the_recorded_command(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        (tmp_path / lab_mod.STATE_FILE).write_text(json.dumps(
            {"pid": other.pid, "port": 1, "token": "t", "root": "/", "cmd": ["python", "-m", "jupyterlab"]}))
        assert lab_mod.stop(tmp_path).pid == other.pid  # the stale record is dropped...
        assert other.poll() is None                      # ...and the reused PID left alone
        assert not (tmp_path / lab_mod.STATE_FILE).exists()
    finally:
        other.kill()
        other.wait()


def _requires_jupyterlab():
    """`make test` installs the `lab` extra: without it this is a setup gap, not a pass."""
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.fail("jupyterlab (the `lab` extra) is not installed; run the suite through `make test`")


def _run_in_kernel(port: int, token: str, code: str) -> str:
    """Execute `code` in a new python3 kernel of the lab (REST + websocket) and return its stdout."""
    import websocket

    def api(method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    kernel = api("POST", "/api/kernels", {"name": "python3"})
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels",
                                     header=[f"Authorization: token {token}"], timeout=120)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False}}))
        out = []
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()
        api("DELETE", f"/api/kernels/{kernel['id']}")


@pytest.mark.slow
def test_start_requires_the_token_and_stop_ends_it(tmp_path, monkeypatch):
    _requires_jupyterlab()
    monkeypatch.setenv("MPLBACKEND", "agg")  # a user's setting must not reach the notebooks' kernels
    state = tmp_path / "state"
    first = lab_mod.start(gpu=3, state_dir=state, root=REPO)
    try:
        assert lab_mod.api_status(first.port, first.token) == 200
        assert lab_mod.api_status(first.port, None) == 403
        assert lab_mod.api_status(first.port, "not-the-token") == 403
        assert first.url == f"http://127.0.0.1:{first.port}/lab?token={first.token}"
        environ = Path(f"/proc/{first.pid}/environ").read_bytes().split(b"\0")
        assert b"CUDA_VISIBLE_DEVICES=3" in environ
        assert not any(first.token in c for c in first.cmd)  # the token is not visible in `ps`
        assert "--ip=127.0.0.1" in first.cmd
        printed = _run_in_kernel(first.port, first.token,
                                 "import workbench, matplotlib; print(workbench.__file__); print(matplotlib.get_backend())")
        assert printed.splitlines() == [str(REPO / "workbench" / "__init__.py"),
                                        "module://matplotlib_inline.backend_inline"]

        second = lab_mod.start(state_dir=state, root=REPO)  # replaces the lab it started earlier
        assert not lab_mod._alive(first.pid)
        assert lab_mod.api_status(second.port, second.token) == 200
    finally:
        stopped = lab_mod.stop(state)
    assert stopped is not None and stopped.pid == second.pid
    deadline = time.monotonic() + 5
    while lab_mod._alive(second.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not lab_mod._alive(second.pid)
    with pytest.raises(OSError):
        lab_mod.api_status(second.port, second.token, timeout=1)
    assert not (state / lab_mod.STATE_FILE).exists()
    assert lab_mod.stop(state) is None
