"""CPU benchmark over the tiny families: native vs official time ratio and stage overhead.

Same weights, same request, one process (workbench/perf/pipelines.py, which notebook 06
measures with too); each side warmed up once, then the median of `--repeats` runs. Stage
overhead = native wall time minus the sum of its stage timings (the runtime's own cost:
checks, hooks, bookkeeping). Finishes in about a minute.

    python benchmarks/cpu_pipelines.py [--families wan_t2v ...] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from workbench import registry
from workbench.families.offline import quiet_hf
from workbench.io import atomic_write_text
from workbench.perf.pipelines import NATIVE, REFERENCE, PairedPipelines, load_pair, measure
from workbench.perf.records import write_records
from workbench.references import versions


def bench_family(name: str, repeats: int) -> tuple[dict, PairedPipelines]:
    pair = load_pair(name, device="cpu")
    runs = measure(pair, repeats).timings
    ref = statistics.median(run[REFERENCE].latency_s for run in runs)
    nat = statistics.median(run[NATIVE].latency_s for run in runs)
    overhead = statistics.median(run[NATIVE].latency_s - sum(run[NATIVE].stages.values()) for run in runs)
    return {"family": name, "reference_s": ref, "native_s": nat, "ratio": nat / ref,
            "stage_overhead_s": overhead, "stage_overhead_pct": 100 * overhead / nat,
            "params": pair.params.to_json_dict()}, pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", default=sorted(registry.FAMILIES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    quiet_hf()
    torch.set_num_threads(2)
    rows, records = [], []
    for name in args.families:
        row, pair = bench_family(name, args.repeats)
        rows.append(row)
        records.append(pair.record(NATIVE, latency_s=row["native_s"],
                                   extra={k: row[k] for k in ("reference_s", "ratio", "stage_overhead_s")}))
        print(f"{name:14s} official {row['reference_s'] * 1e3:8.1f} ms  native {row['native_s'] * 1e3:8.1f} ms  "
              f"ratio {row['ratio']:.3f}  stage overhead {row['stage_overhead_s'] * 1e3:.2f} ms "
              f"({row['stage_overhead_pct']:.1f}%)")
    args.out.mkdir(parents=True, exist_ok=True)
    write_records(args.out / "cpu_tiny_records.json", records)
    atomic_write_text(args.out / "cpu_tiny_summary.json",
                      json.dumps({"rows": rows, "versions": versions()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
