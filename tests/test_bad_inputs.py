"""The bad-input battery (issue 18): every case ends as one line on stderr naming the file, field
or stage and what was expected, exit 2 (or the stated behaviour), no traceback, and nothing the
user had is changed or lost.

Commands run in-process through `workbench.cli.main` (the console script's own code path; a
subprocess per case would cost seconds of imports each). The tiny Wan build is made once per
session (`wan_dir`) and copied per case that corrupts it (`wan_copy`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main


def tree_state(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones too) -> sha256 of its bytes: equal before and after = untouched."""
    root = Path(root)
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def one_line_error(capsys, argv, *needles, code=2) -> str:
    """Run the CLI; assert the exit code, exactly one stderr line holding every needle, no traceback."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == code, f"exit {rc}, stderr: {err}"
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {err!r}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert lines[0].startswith(f"workbench {argv[0]}: error: ")
    return lines[0]


# ---- data lost or half-written ---------------------------------------------------------------
def test_build_reference_refuses_a_users_directory(capsys, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "thesis.txt").write_text("x")
    before = tree_state(d)
    one_line_error(capsys, ["build-reference", "wan_t2v", "--out", str(d)], f"--out {d}", "thesis.txt",
                   "not a reference build")
    assert tree_state(d) == before
    assert sorted(os.listdir(tmp_path)) == ["d"]  # no staging directory left behind


def test_build_reference_may_replace_an_earlier_build_or_fill_an_empty_directory(tmp_path):
    from workbench.commands.build_reference import check_out_dir
    from workbench.errors import ParameterError

    empty = tmp_path / "empty"
    empty.mkdir()
    check_out_dir(empty)
    check_out_dir(tmp_path / "new")
    build = tmp_path / "build"
    for side in ("official", "converted"):
        (build / side).mkdir(parents=True)
        (build / side / "model_index.json").write_text("{}")
    check_out_dir(build)
    (build / "notes.md").write_text("mine")
    with pytest.raises(ParameterError, match="notes.md"):
        check_out_dir(build)
    with pytest.raises(ParameterError, match="is a file, expected a directory"):
        check_out_dir(build / "notes.md")


@pytest.mark.parametrize("flag", ["--json", "--report"])
@pytest.mark.parametrize("where", ["proc", "existing_dir", "under_a_file"])
def test_parity_output_paths_checked_before_the_run(capsys, tmp_path, wan_dir, monkeypatch, flag, where):
    import workbench.parity.runner as runner

    hostname = tmp_path / "hostname"
    hostname.write_text("host\n")
    target, needle = {"proc": ("/proc/v.json", "cannot write in /proc"),
                      "existing_dir": (str(tmp_path), "is a directory"),
                      "under_a_file": (f"{hostname}/r.html", "is a file, not a directory")}[where]
    monkeypatch.setattr(runner, "run_parity", lambda *a, **k: pytest.fail("parity ran before its outputs were checked"))
    before = tree_state(tmp_path)
    one_line_error(capsys, ["parity", "wan_t2v", "--model-dir", str(wan_dir), flag, target], flag, needle)
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize("argv_tail, needles", [
    (["--out", "/proc/o.mp4"], ("--out /proc/o.mp4", "cannot write in /proc")),
    (["--out", "{hostname}/o.mp4"], ("/o.mp4", "is a file, not a directory")),
    (["--out", "{tmp}/o.mp4", "--frames-dir", "{hostname}"], ("--frames-dir", "is a file, expected a directory")),
    (["--out", "{tmp}/o.avi"], ("--out", "o.avi", "family wan_t2v writes video", ".mp4 or .gif")),
    (["--out", "{tmp}/o"], ("--out", "expected a file ending in")),
], ids=["proc", "under_a_file", "frames_dir_is_a_file", "avi", "no_suffix"])
def test_generate_output_paths_checked_before_generating(capsys, tmp_path, wan_dir, monkeypatch, argv_tail, needles):
    import workbench.api.generate as api

    hostname = tmp_path / "hostname"
    hostname.write_text("host\n")
    argv_tail = [a.format(hostname=hostname, tmp=tmp_path) for a in argv_tail]
    monkeypatch.setattr(api, "load_pipeline", lambda *a, **k: pytest.fail("generated before checking --out"))
    before = tree_state(tmp_path)
    one_line_error(capsys, ["generate", "wan_t2v", "--model-dir", str(wan_dir), *argv_tail], *needles)
    assert tree_state(tmp_path) == before


def test_generate_refuses_a_video_suffix_for_audio(capsys, tmp_path, monkeypatch):
    import workbench.api.generate as api

    monkeypatch.setattr(api, "load_pipeline", lambda *a, **k: pytest.fail("generated before checking --out"))
    one_line_error(capsys, ["generate", "stable_audio", "--model-dir", str(tmp_path), "--out", str(tmp_path / "a.mp4")],
                   "family stable_audio writes audio", ".wav or .flac")
    assert os.listdir(tmp_path) == []


def test_perf_record_batch_is_one_transaction(capsys, tmp_path):
    from tests.perf.conftest import record_dict

    db = tmp_path / "perf.sqlite"
    old = tmp_path / "old.json"
    old.write_text(json.dumps([record_dict(0)]))
    assert main(["perf", "record", str(old), "--db", str(db)]) == 0
    capsys.readouterr()
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([record_dict(1), record_dict(0)]))  # [new, duplicate]
    one_line_error(capsys, ["perf", "record", str(batch), "--db", str(db)], "already stored",
                   "nothing of this batch of 2 was recorded")
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT \"commit\" FROM records").fetchall() == [("c0000",)]


KILLED_BUILD = """
import sys, time
from pathlib import Path
from workbench.io import atomic_directory
with atomic_directory(Path(sys.argv[1])) as tmp:
    (tmp / "official").mkdir()
    print("staged", flush=True)
    time.sleep(60)
"""


def test_killed_build_leaves_nothing_the_next_build_does_not_clean(tmp_path):
    """kill -9 in the middle of an atomic directory build: its staging directory is removed by the
    next build of the same target (the killed process is gone), and the earlier build survives."""
    from workbench.io import atomic_directory

    target = tmp_path / "ref"
    target.mkdir()
    (target / "converted").mkdir()
    (target / "converted" / "model_index.json").write_text("{}")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(target)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "staged"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".ref.")]
    assert len(leftovers) == 1  # what kill -9 leaves
    assert (target / "converted" / "model_index.json").read_text() == "{}"  # the earlier build is intact
    with atomic_directory(target) as tmp:
        (tmp / "official").mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref"]
    assert sorted(os.listdir(target)) == ["official"]


def test_swap_killed_between_renames_restores_the_old_directory(tmp_path):
    from workbench.io import atomic_directory

    target = tmp_path / "ref"
    backup = tmp_path / ".ref.old"
    backup.mkdir()
    (backup / "keep.txt").write_text("old build")  # the state after `target -> backup`, before `tmp -> target`
    from workbench.io import clean_stale_directories

    clean_stale_directories(target)
    assert (target / "keep.txt").read_text() == "old build" and not backup.exists()
    with atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref"] and os.listdir(target) == ["new.txt"]


# ---- damaged model directories: tracebacks that became named errors, silent loads refused -----
def _shard(transformer: Path, index: str) -> None:
    os.rename(transformer / "diffusion_pytorch_model.safetensors",
              transformer / "diffusion_pytorch_model-00001-of-00001.safetensors")
    (transformer / "diffusion_pytorch_model.safetensors.index.json").write_text(index)


def _retype(key_suffix: str, dtype_name: str):
    def corrupt(d: Path) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        dtype = getattr(torch, dtype_name)
        f = d / "converted/transformer/diffusion_pytorch_model.safetensors"
        state = load_file(f)
        key = next(k for k in state if k.endswith(key_suffix))
        state[key] = state[key].to(dtype)
        save_file(state, f)
    return corrupt


def _outside_shard(d: Path) -> None:
    from safetensors.torch import load_file

    t = d / "converted/transformer"
    keys = list(load_file(t / "diffusion_pytorch_model.safetensors"))
    os.rename(t / "diffusion_pytorch_model.safetensors", d / "x.safetensors")
    (t / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {k: "../../x.safetensors" for k in keys}}))


def _edit_json(rel: str, **changes):
    def corrupt(d: Path) -> None:
        path = d / rel
        data = json.loads(path.read_text())
        data.update(changes)
        path.write_text(json.dumps(data))
    return corrupt


def _empty_tokenizer(d: Path) -> None:
    shutil.rmtree(d / "converted/tokenizer")
    (d / "converted/tokenizer").mkdir()


def _pickle_official(d: Path) -> None:
    import torch
    from safetensors.torch import load_file

    t = d / "official/transformer"
    torch.save(load_file(t / "diffusion_pytorch_model.safetensors"), t / "diffusion_pytorch_model.bin")
    os.remove(t / "diffusion_pytorch_model.safetensors")


MODEL_DIR_CASES = {
    "index_invalid_json": (lambda d: _shard(d / "converted/transformer", "{not json"),
                           ("transformer/diffusion_pytorch_model.safetensors.index.json", "not a readable JSON index")),
    "index_without_weight_map": (lambda d: _shard(d / "converted/transformer", '{"metadata": {}}'),
                                 ("index.json", "expected a non-empty 'weight_map'")),
    "index_shard_outside_folder": (_outside_shard, ("index.json", "outside the module folder", "../../x.safetensors")),
    "index_missing_shard": (lambda d: _shard(d / "converted/transformer", '{"weight_map": {"a": "gone.safetensors"}}'),
                            ("index.json", "do not exist", "gone.safetensors")),
    "config_field_wrong_type": (_edit_json("converted/transformer/config.json", num_layers="abc"),
                                ("transformer/config.json", "field 'num_layers' expected an integer", "'abc'")),
    "config_invalid_json": (lambda d: (d / "converted/text_encoder/config.json").write_text('{"d_model": 32,'),
                            ("text_encoder/config.json", "invalid JSON", "line 1")),
    "tensor_int64_for_float32": (_retype("proj_out.weight", "int64"),
                                 ("converted/transformer", "'proj_out.weight' is int64 in the file, float32 expected")),
    "tensor_float16_for_float32": (_retype("proj_out.weight", "float16"),
                                   ("converted/transformer", "'proj_out.weight' is float16 in the file, float32 expected")),
    "empty_tokenizer_folder": (_empty_tokenizer, ("converted/tokenizer", "no vocabulary file for T5Tokenizer")),
}


@pytest.mark.parametrize("case", sorted(MODEL_DIR_CASES))
def test_damaged_model_directory_is_a_named_error(capsys, wan_copy, tmp_path, case):
    corrupt, needles = MODEL_DIR_CASES[case]
    corrupt(wan_copy)
    before = tree_state(wan_copy)
    out = tmp_path / "o.mp4"
    one_line_error(capsys, ["generate", "wan_t2v", "--model-dir", str(wan_copy), "--out", str(out)], *needles)
    assert tree_state(wan_copy) == before and not out.exists()


def test_a_declared_precision_still_loads_its_dtype(wan_copy):
    """A bf16 checkpoint loaded for bf16 (a module's declared precision) is not refused."""
    import torch

    from workbench.runtime.loader import load_module
    from workbench.runtime.manifest import read_manifest

    _retype("proj_out.weight", "bfloat16")(wan_copy)
    spec = read_manifest(wan_copy / "converted").modules["transformer"]
    model = load_module(wan_copy / "converted", spec, dtype=torch.bfloat16)
    assert model.proj_out.weight.dtype == torch.float32  # loaded (cast by the policy's placement later)


def test_official_pickle_weights_refused_by_name(capsys, wan_copy):
    _pickle_official(wan_copy)
    before = tree_state(wan_copy)
    one_line_error(capsys, ["parity", "wan_t2v", "--model-dir", str(wan_copy), "--skip-component-gate"],
                   "official/transformer", "only pickle weights (diffusion_pytorch_model.bin)", "safetensors only")
    assert tree_state(wan_copy) == before


def test_component_parity_official_side_is_safetensors_only(wan_copy):
    from workbench.errors import ComponentLoadError
    from workbench.portstate.components import load_official
    from workbench.runtime.manifest import read_manifest

    _pickle_official(wan_copy)
    spec = read_manifest(wan_copy / "official").modules["transformer"]
    with pytest.raises(ComponentLoadError, match="only pickle weights"):
        load_official(wan_copy / "official", spec)


# ---- requests: refused before anything is allocated --------------------------------------------
def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (PIL refuses a bomb from the header alone)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("sets, needles", [
    (["height=100000000"], ("stage 'InputValidationStage'", "field 'height' expected at most", "rope_max_seq_len",
                            "got 100000000")),
    (["width=100000000"], ("field 'width' expected at most", "RoPE table")),
    (["num_frames=100001"], ("field 'num_frames' expected at most", "RoPE table")),
    (["guidance_scale=Infinity"], ("field 'guidance_scale' expected a finite number", "got inf")),
    (["guidance_scale=NaN"], ("field 'guidance_scale' expected a finite number", "got nan")),
], ids=["height_beyond_rope", "width_beyond_rope", "frames_beyond_rope", "guidance_inf", "guidance_nan"])
def test_request_out_of_the_models_range(capsys, tmp_path, wan_dir, sets, needles):
    argv = ["generate", "wan_t2v", "--model-dir", str(wan_dir), "--out", str(tmp_path / "o.mp4")]
    one_line_error(capsys, argv + [a for s in sets for a in ("--set", s)], *needles)
    assert os.listdir(tmp_path) == []


def test_size_beyond_free_memory_refused_before_allocating(capsys, tmp_path, wan_dir, monkeypatch):
    from workbench.runtime import validators

    monkeypatch.setattr(validators, "available_memory_bytes", lambda device=None: 1000)
    one_line_error(capsys, ["generate", "wan_t2v", "--model-dir", str(wan_dir), "--out", str(tmp_path / "o.mp4")],
                   "field 'num_frames x height x width'", "decoded frames (fp32) fits in memory", "GiB available")
    assert os.listdir(tmp_path) == []


def test_image_on_a_text_to_video_family_is_refused(capsys, tmp_path, wan_dir):
    from PIL import Image

    image = tmp_path / "first.png"
    Image.new("RGB", (40, 40)).save(image)
    before = tree_state(tmp_path)
    one_line_error(capsys, ["generate", "wan_t2v", "--model-dir", str(wan_dir), "--out", str(tmp_path / "o.mp4"),
                            "--image", str(image)], "family wan_t2v is T2V and takes no conditioning image")
    assert tree_state(tmp_path) == before


def test_decompression_bomb_image_is_a_named_error(capsys, tmp_path):
    from workbench import registry
    from workbench.references import ensure_reference

    i2v = ensure_reference(registry.get_family("wan_i2v"))
    bomb = _png_header(tmp_path / "bomb.png", 20000, 20000)
    before = tree_state(tmp_path)
    one_line_error(capsys, ["generate", "wan_i2v", "--model-dir", str(i2v), "--out", str(tmp_path / "o.mp4"),
                            "--image", str(bomb)], f"image {bomb}: too large to decode safely", "400000000 pixels")
    assert tree_state(tmp_path) == before


def test_model_dir_of_another_family_is_named(capsys, wan_copy, tmp_path):
    """`generate wan_t2v --model-dir <a stable_audio build>`: the directory's class is named."""
    manifest = wan_copy / "converted/model_index.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "_class_name": "NativeStableAudioPipeline"}))
    before = tree_state(wan_copy)
    one_line_error(capsys, ["generate", "wan_t2v", "--model-dir", str(wan_copy), "--out", str(tmp_path / "o.mp4")],
                   "holds NativeStableAudioPipeline (family stable_audio)", "not NativeWanPipeline of family wan_t2v")
    assert tree_state(wan_copy) == before


@pytest.mark.parametrize("process", ["foreign", "gone"])
def test_lab_stop_says_what_it_did(capsys, tmp_path, monkeypatch, process):
    from workbench import lab as lab_mod

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        if process == "gone":
            other.kill()
            other.wait()
        state = tmp_path / "lab"
        state.mkdir()
        (state / lab_mod.STATE_FILE).write_text(json.dumps(
            {"pid": other.pid, "port": 1, "token": "t", "root": "/", "cmd": ["python", "-m", "jupyterlab"]}))
        assert main(["lab", "--stop"]) == 0
        out = capsys.readouterr().out
        assert "stopped JupyterLab" not in out
        assert ("did not stop pid" in out and "left alone" in out) if process == "foreign" else "was not running" in out
        if process == "foreign":
            assert other.poll() is None  # the process that reused the PID is untouched
    finally:
        other.kill()
        other.wait()


# ---- a native side that raises during parity: a partial verdict, exit 1 ----------------------
@pytest.mark.parametrize("fault, stage, step", [
    ("decode_wrong_layout", "DecodingStage", None),
    ("denoiser_raises_at_step_1", "DenoisingStage", 1),
])
def test_native_side_raising_gives_a_partial_verdict(capsys, tmp_path, wan_dir, monkeypatch, fault, stage, step):
    import workbench.api.generate as api
    from workbench.families.wan.pipeline import NativeWanPipeline
    from workbench.parity.verdict import Verdict

    monkeypatch.setattr(api, "_PIPELINES", {})  # a pipeline built with the fault is not cached for other tests
    if fault == "decode_wrong_layout":  # latents [B, C, F, H, W] handed over as [B, F, C, H, W]: a conv error
        decode = NativeWanPipeline.decode
        monkeypatch.setattr(NativeWanPipeline, "decode", lambda self, latents, batch: decode(
            self, latents.transpose(1, 2).contiguous(), batch))
    else:
        predict = NativeWanPipeline.predict_noise
        calls = []

        def predict_noise(self, model, latents, t, batch, branch, **kw):
            calls.append(branch)
            if len(calls) > 2:  # sequential guidance: two calls per step, so this is step 1
                raise RuntimeError("injected fault\nsecond line")
            return predict(self, model, latents, t, batch, branch, **kw)

        monkeypatch.setattr(NativeWanPipeline, "predict_noise", predict_noise)
    out = tmp_path / "v.json"
    rc = main(["parity", "wan_t2v", "--model-dir", str(wan_dir), "--skip-component-gate", "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 1 and "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench parity: native side raised in ")
    assert f"stage {stage!r}" in lines[0] and (step is None or f"step {step}:" in lines[0])
    verdict = Verdict.from_json(out)
    assert verdict.native_error["stage"] == stage and verdict.native_error["step"] == step
    assert not verdict.passed and verdict.exit_code == 1
    got = {c.name: c for c in verdict.checkpoints}
    assert got["prompt_embeds"].passed  # captured before the fault, and compared
    if step == 1:
        assert got["latents_step_000"].passed and got["latents_step_001"].reason == "missing in native"
    else:
        assert got["final_latents"].passed and got["frames"].reason == "missing in native"
    assert "native side raised" in captured.out  # the partial verdict table says so too


def test_generate_sp_checks_out_before_starting_ranks(capsys, tmp_path, monkeypatch):
    import workbench.commands.generate as command

    monkeypatch.setattr(command, "run_sequence_parallel", lambda *a, **k: pytest.fail("ranks started before --out"))
    one_line_error(capsys, ["generate", "wan_t2v", "--sp", "2", "--out", str(tmp_path / "o.avi")], "--out", "o.avi",
                   "expected a file ending in")
    assert os.listdir(tmp_path) == []
