"""The SP gate on CPU: `workbench parity FAMILY --mode fast --sp 2` starts 2 gloo ranks, the
native Wan DiT runs token-sharded (Ulysses all-to-all around attention), and rank 0 compares the
result with the official pipeline (fast-mode tolerances) and with the same pipeline at SP=1
(exact table). Real tensors on every side: diffusers' WanPipeline, the native DiT unsharded, the
native DiT sharded over two processes."""

from __future__ import annotations

import pytest

from workbench import cli
from workbench.components.sequence_parallel import check_heads, padded_length
from workbench.errors import ParameterError


def test_heads_not_divisible_refused(capfd):
    assert cli.main(["generate", "wan_t2v", "--sp", "3", "--out", "x.mp4"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 attention heads, not divisible by 3" in err[0] and "--sp one of [1, 2]" in err[0]


@pytest.mark.parametrize("argv, message", [
    (["generate", "wan_t2v", "--sp", "2", "--mode", "exact", "--out", "x.mp4"], "use --mode fast"),
    (["generate", "stable_audio", "--sp", "2", "--out", "x.wav"], "no native sequence-parallel DiT"),
    (["generate", "wan_t2v", "--sp", "0", "--out", "x.mp4"], "expected 1 or more ranks"),
    (["generate", "wan_t2v", "--sp", "2", "--device", "cuda:1", "--out", "x.mp4"], "rank r uses cuda:r"),
])
def test_refusals(argv, message, capfd):
    assert cli.main(argv) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_shard_arithmetic():
    assert [padded_length(n, 2) for n in (12, 27, 1)] == [12, 28, 2]
    assert padded_length(27, 4) == 28
    check_heads(12, 4)
    with pytest.raises(ParameterError, match="12 attention heads, not divisible by 8"):
        check_heads(12, 8)


@pytest.mark.slow
def test_generate_sp2_matches_sp1(tmp_path, capfd):
    """`workbench generate --sp 2` (2 gloo ranks, rank 0 writes) gives the frames of the
    unsharded native DiT run in this process."""
    from workbench.api.generate import generate

    rc = cli.main(["generate", "wan_t2v", "--sp", "2", "--device", "cpu", "--out", str(tmp_path / "sp2.mp4"),
                   "--frames-dir", str(tmp_path / "sp2")])
    assert rc == 0, capfd.readouterr()
    generate("wan_t2v", device="cpu", mode="fast", frames_dir=tmp_path / "sp1", progress=False)
    sp2, sp1 = sorted((tmp_path / "sp2").glob("*.png")), sorted((tmp_path / "sp1").glob("*.png"))
    assert sp2 and [p.name for p in sp2] == [p.name for p in sp1]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(sp2, sp1))
    assert (tmp_path / "sp2.mp4").is_file() and (tmp_path / "sp2.mp4.json").is_file()
