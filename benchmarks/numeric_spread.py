"""How far the golden checkpoints move across numeric environments of one x86-64 CPU.

Each environment (ATEN_CPU_CAPABILITY x MKL_CBWR x ONEDNN_MAX_CPU_ISA) runs in its own
process with its own reference cache, so the tiny random-init build itself (torch.randn
differs between vector paths) is redone there, as on a fresh clone of another host. Every
official and native checkpoint of every family's golden presets is compared with the
committed goldens. The spread, per checkpoint kind, is the source of the regression
tolerances in `workbench/parity/tolerances.py`.

    python benchmarks/numeric_spread.py [--families wan_t2v,ltx2] [--out benchmarks/results/numeric_spread.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def environments(capabilities) -> list[dict[str, str]]:
    out = []
    for cap, cbwr, isa in itertools.product(capabilities, (None, "COMPATIBLE"), (None, "AVX2")):
        env = {"ATEN_CPU_CAPABILITY": cap}
        if cbwr:
            env["MKL_CBWR"] = cbwr
        if isa:
            env["ONEDNN_MAX_CPU_ISA"] = isa
        out.append(env)
    return out


def env_name(env: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(env.items()))


def worker(out: Path, families: list[str]) -> None:
    """Build each family's tiny reference here, run both sides at its golden presets, save."""
    import torch

    from workbench import registry
    from workbench.parity.numeric_env import describe
    from workbench.parity.runner import run_native, run_reference
    from workbench.references import ensure_reference, tree_sha256

    info = {"environment": describe(), "model_dir_sha256": {}}
    for name in families:
        family = registry.get_family(name)
        root = ensure_reference(family)
        info["model_dir_sha256"][name] = {side: tree_sha256(root / side) for side in ("official", "converted")}
        for preset in family.golden_presets:
            params = family.sampling_params(preset)
            run_reference(family, root / "official", params, torch.device("cpu")).save(out / name / preset, "official")
            run_native(root / "converted", params)[0].save(out / name / preset, "native")
    (out / "info.json").write_text(json.dumps(info, indent=1))


def spread(runs: dict[str, Path], families: list[str]) -> dict:
    """Per environment, family, checkpoint and side: max |x - golden| and its size relative
    to max |golden|; then the worst per kind."""
    from workbench import registry
    from workbench.parity.capture import CaptureSet
    from workbench.parity.golden import load_golden

    rows, by_kind = [], {}
    for name in families:
        for preset in registry.get_family(name).golden_presets:
            golden, _ = load_golden(name, preset)
            for env, path in runs.items():
                for side in ("official", "native"):
                    capture = CaptureSet.load(path / name / preset, side)
                    for ref in golden:
                        if ref.name not in capture:
                            continue
                        a = ref.tensor.double()
                        b = capture[ref.name].tensor.double()
                        max_abs = float((a - b).abs().max()) if a.numel() else 0.0
                        scale = float(a.abs().max()) if a.numel() else 0.0
                        rel = max_abs / scale if scale else 0.0
                        rows.append({"env": env, "family": name, "preset": preset, "side": side,
                                     "checkpoint": ref.name, "kind": ref.kind, "max_abs": max_abs,
                                     "max_rel": rel, "scale": scale})
                        worst = by_kind.setdefault(ref.kind, {"max_abs": 0.0, "max_rel": 0.0, "at": None})
                        if rel > worst["max_rel"]:
                            worst.update(max_rel=rel, at=f"{name}/{ref.name} ({side}, {env})")
                        worst["max_abs"] = max(worst["max_abs"], max_abs)
    return {"rows": rows, "by_kind": by_kind}


def worst_per_checkpoint(rows: list[dict]) -> dict[str, dict]:
    """family/checkpoint -> the largest relative spread over environments and sides, and where."""
    out: dict[str, dict] = {}
    for row in rows:
        key = f"{row['family']}/{row['preset']}/{row['checkpoint']}"
        if key not in out or row["max_rel"] > out[key]["max_rel"]:
            out[key] = {k: row[k] for k in ("kind", "max_rel", "max_abs", "env", "side")}
    return out


def worst_per_environment(rows: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        out[row["env"]] = max(out.get(row["env"], 0.0), row["max_rel"])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", help="comma-separated (default: every registered family)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "numeric_spread.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from workbench import registry
    from workbench.parity.numeric_env import describe, supported_capabilities

    families = args.families.split(",") if args.families else sorted(registry.FAMILIES)
    if args.worker:
        worker(Path(args.worker), families)
        return 0
    runs, infos = {}, {}
    with tempfile.TemporaryDirectory(prefix="numeric-spread-") as tmp:
        envs = environments(supported_capabilities())
        for i, env in enumerate(envs):
            name = env_name(env)
            out = Path(tmp) / f"env{i}"
            child = dict(os.environ, **env, WORKBENCH_CACHE=str(Path(tmp) / f"cache{i}"), HF_HUB_OFFLINE="1",
                         PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
            for var in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA"):
                if var not in env:
                    child.pop(var, None)
            started = time.time()
            subprocess.run([sys.executable, __file__, "--worker", str(out), "--families", ",".join(families)],
                           env=child, check=True)
            print(f"[{i + 1}/{len(envs)}] {name}: {time.time() - started:.0f} s", flush=True)
            runs[name] = out
            infos[name] = json.loads((out / "info.json").read_text())
        result = spread(runs, families)
    summary = {
        "what": "max |checkpoint - committed golden| over numeric environments of this CPU (both sides)",
        "command": "python benchmarks/numeric_spread.py",
        "host": describe(),
        "date": time.strftime("%Y-%m-%d"),
        "environments": infos,
        "by_kind": result["by_kind"],
        "by_checkpoint": worst_per_checkpoint(result["rows"]),
        "by_environment": worst_per_environment(result["rows"]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    for kind, worst in sorted(result["by_kind"].items()):
        print(f"{kind:10s} max_abs {worst['max_abs']:.3e}  max_rel {worst['max_rel']:.3e}  at {worst['at']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
