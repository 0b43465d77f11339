"""CPU benchmark over the tiny families: native vs official time ratio and stage overhead.

Same weights, same request, one process; each side warmed up once, then the median of
`--repeats` runs. Stage overhead = native wall time minus the sum of its stage timings
(the runtime's own cost: checks, hooks, bookkeeping). Finishes in about a minute.

    python benchmarks/cpu_pipelines.py [--families wan_t2v ...] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from workbench import registry
from workbench.api.generate import load_pipeline
from workbench.families.offline import quiet_hf
from workbench.io import atomic_write_text
from workbench.perf.measure import make_record, timed
from workbench.perf.records import write_records
from workbench.references import ensure_reference, versions


def bench_family(name: str, repeats: int) -> dict:
    family = registry.get_family(name)
    root = ensure_reference(family)
    params = family.sampling_params()
    device = torch.device("cpu")
    official = family.reference.load_official(root / "official", device)
    native = load_pipeline(root / "converted", device=device, progress=False)
    run_official = lambda: family.reference.run_reference(root / "official", params, device, pipe=official)  # noqa: E731
    run_native = lambda: native(params)  # noqa: E731
    run_official(), run_native()  # warm-up
    ref_times, nat_times, overheads = [], [], []
    for _ in range(repeats):
        ref_times.append(timed(run_official, device)[1])
        batch, seconds = timed(run_native, device)
        nat_times.append(seconds)
        overheads.append(seconds - sum(batch.stage_timings.values()))
    ref, nat = statistics.median(ref_times), statistics.median(nat_times)
    return {"family": name, "reference_s": ref, "native_s": nat, "ratio": nat / ref,
            "stage_overhead_s": statistics.median(overheads), "stage_overhead_pct": 100 * statistics.median(overheads) / nat,
            "params": params.to_json_dict()}


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
        row = bench_family(name, args.repeats)
        rows.append(row)
        records.append(make_record(model_id=f"{name} tiny", workload_id="tiny-ci", variant_id="native-exact-cpu",
                                   recipe=row["params"], latency_s=row["native_s"],
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
