"""A cache of built reference model directories, so parity runs without `--model-dir`
build the tiny official pipeline once.

The cache key holds a fingerprint of the builder's source and the library versions: a
change to either builds a fresh directory instead of reusing a stale one.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path

from workbench.io import atomic_directory

SCALES = ("tiny", "full")


def cache_root() -> Path:
    return Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "workbench"))


def versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "diffusers", "transformers", "workbench"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def builder_fingerprint(family) -> str:
    """Hash of the builder's source: the reference module, the family reference modules it
    builds on (its `BUILT_ON`, e.g. Wan 2.2 on Wan 2.1), and the shared offline helpers."""
    from workbench.families import conversion, offline

    h = hashlib.sha256()
    for module in (family.reference, *getattr(family.reference, "BUILT_ON", ()), offline, conversion):
        h.update(inspect.getsource(module).encode())
    for k, v in sorted(versions().items()):
        h.update(f"{k}={v}".encode())
    return h.hexdigest()[:12]


def build_reference(family, out: Path, scale: str = "tiny") -> Path:
    """Build `out/official` and `out/converted` atomically (a failed build leaves nothing)."""
    from workbench.errors import ParameterError
    from workbench.families.offline import quiet_hf

    if scale not in SCALES:
        raise ParameterError(f"--scale {scale!r}: expected one of {SCALES}")
    quiet_hf()
    with atomic_directory(out) as tmp:
        family.reference.build_reference(tmp, scale)
    return out


def ensure_reference(family, scale: str = "tiny") -> Path:
    """The cached reference directory for `family`, built on first use, once: processes
    that need it at the same time (parallel sweep workers) wait for the one that builds it
    instead of swapping their own build in under its readers."""
    import fcntl

    path = cache_root() / "references" / f"{family.name}-{scale}-{builder_fingerprint(family)}"
    built = path / "converted" / "model_index.json"
    if not built.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not built.is_file():
                build_reference(family, path, scale)
    return path


def tree_sha256(root: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()
