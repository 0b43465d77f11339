"""GPU benchmark: diffusers `WanPipeline` vs the native fast mode, same weights, one process.

Wan2.1-T2V-1.3B architecture (random init from `build-reference --scale full`), 480x832,
81 frames. Each side: a 1-step warm-up, an end-to-end run without instrumentation
(latency, peak memory), and a component run (text encoder, DiT per step, VAE decode)
that also captures the checkpoints for fast-mode parity. The reference is unloaded before
the native side loads, so each peak memory is that side's own.

    python benchmarks/gpu_pipeline.py --model-dir /tmp/wan-full [--compile] [--steps 3]
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path
from types import SimpleNamespace

import torch

from workbench import registry
from workbench.api.generate import load_pipeline
from workbench.families.offline import quiet_hf
from workbench.families.wan import reference as wan_reference
from workbench.families.wan.flops import dit_forward_flops, video_tokens
from workbench.io import atomic_write_text
from workbench.parity.capture import CaptureHooks, CaptureSet
from workbench.parity.compare import compare_captures
from workbench.perf.measure import ModuleTimer, make_record, peak_memory, timed
from workbench.perf.records import write_records
from workbench.references import build_reference, versions

PEAK_BF16_TFLOPS = 790.0  # measured 8192^3 bf16 matmul on this H200 (device KINDS.md)


def reference_side(official: Path, params, device) -> dict:
    pipe = wan_reference.load_official(official, device, dtype=torch.bfloat16, fp32_modules=("vae",))
    wan_reference.run_reference(official, params.replace(num_inference_steps=1), device, pipe=pipe)  # warm-up
    with peak_memory(device) as peak:
        _, e2e = timed(lambda: wan_reference.run_reference(official, params, device, pipe=pipe), device)
    timer = ModuleTimer(device)
    timer.wrap("text_encoder", pipe.text_encoder)
    timer.wrap("transformer", pipe.transformer)
    timer.wrap("vae_decode", pipe.vae, "decode")
    capture, _ = wan_reference.run_reference(official, params, device, pipe=pipe)
    timer.remove()
    steps = params.num_inference_steps
    return {"latency_s": e2e, "peak_memory_mb": peak["peak_mb"], "text_encoder_s": timer.seconds["text_encoder"],
            "dit_s": timer.seconds["transformer"] / steps, "vae_decode_s": timer.seconds["vae_decode"],
            "dit_calls_per_step": timer.calls["transformer"] // steps, "capture": capture}


def native_side(converted: Path, params, device, compile: bool) -> dict:
    family = registry.get_family("wan_t2v")
    pipe = load_pipeline(converted, device=device, mode="fast", compile=compile, progress=False)
    fast = params.replace(stage_overrides=family.fast.stage_overrides)
    pipe(fast.replace(num_inference_steps=1))  # warm-up (and compilation)
    def run():
        batch = pipe(fast)
        batch.output = batch.output.cpu()  # the reference returns frames on the host too
        return batch

    with peak_memory(device) as peak:
        batch, e2e = timed(run, device)
    t = batch.stage_timings  # stages sync only at their ends: nothing inside the loop
    capture = CaptureSet()
    pipe(fast, hooks=CaptureHooks(capture))
    steps = params.num_inference_steps
    return {"latency_s": e2e, "peak_memory_mb": peak["peak_mb"], "text_encoder_s": t["TextEncodingStage"],
            "dit_s": t["DenoisingStage"] / steps, "vae_decode_s": t["DecodingStage"],
            "dit_calls_per_step": 1, "capture": capture, "stage_timings": t}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/wan-full"))
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--scale", default="full", choices=("tiny", "full"), help="tiny: a CPU dry run of the script")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    quiet_hf()
    device = torch.device(args.device)
    family = registry.get_family("wan_t2v")
    if not (args.model_dir / "converted" / "model_index.json").is_file():
        _, build_s = timed(lambda: build_reference(family, args.model_dir, args.scale), device)
        print(f"built {args.scale} reference in {build_s:.1f}s")
    params = family.sampling_params("wan2.1-1.3b-480p", {
        "height": args.height, "width": args.width, "num_frames": args.frames,
        "num_inference_steps": args.steps, "seed": 0})

    ref = reference_side(args.model_dir / "official", params, device)
    gc.collect()  # the reference pipeline is gone: the native side's peak memory is its own
    if device.type == "cuda":
        torch.cuda.empty_cache()
    nat = native_side(args.model_dir / "converted", params, device, args.compile)
    verdict = compare_captures(ref.pop("capture"), nat.pop("capture"), mode="fast", family="wan_t2v",
                               preset="wan2.1-1.3b-480p", parameters=params.to_json_dict())

    cfg = SimpleNamespace(**wan_reference.TRANSFORMER_SIZES[args.scale])
    flops = dit_forward_flops(cfg, video_tokens(cfg, args.height, args.width, args.frames),
                              params.max_sequence_length)
    recipe = {"family": "wan_t2v", "scale": args.scale, "height": args.height, "width": args.width,
              "frames": args.frames, "steps": args.steps, "prompt": params.prompt}
    records, summary = [], {}
    for side, r, variant in (("diffusers", ref, "diffusers-bf16"),
                             ("native", nat, "native-fast" + ("-compile" if args.compile else ""))):
        mfu = 2 * flops / r["dit_s"] / (PEAK_BF16_TFLOPS * 1e12)  # two guidance branches per step
        summary[side] = {k: v for k, v in r.items() if k != "stage_timings"} | {"dit_mfu": mfu}
        records.append(make_record(
            model_id="Wan2.1-T2V-1.3B (random init)", workload_id="t2v-480x832x81", variant_id=variant,
            recipe=recipe, latency_s=r["latency_s"], frames=args.frames, peak_memory_mb=r["peak_memory_mb"],
            text_encoder_s=r["text_encoder_s"], dit_s=r["dit_s"], vae_decode_s=r["vae_decode_s"],
            extra={"dit_mfu": mfu, "dit_tflop_per_forward": flops / 1e12}))
    summary["ratios"] = {k: summary["native"][k] / summary["diffusers"][k]
                         for k in ("latency_s", "dit_s", "vae_decode_s", "text_encoder_s", "peak_memory_mb")
                         if summary["native"][k] is not None and summary["diffusers"][k] is not None}
    summary["parity"] = {"passed": verdict.passed, "table": verdict.summary_table()}
    summary["versions"] = versions()
    summary["targets"] = {"e2e_ratio<=0.75": summary["ratios"]["latency_s"] <= 0.75,
                          "dit_mfu>=0.75": summary["native"]["dit_mfu"] >= 0.75,
                          "peak_memory<=diffusers": summary["ratios"].get("peak_memory_mb", float("nan")) <= 1.0}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_wan_t2v" + ("_compile" if args.compile else "")
    write_records(args.out / f"{stem}_records.json", records)
    atomic_write_text(args.out / f"{stem}_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "parity"}, indent=2, default=str))
    print(verdict.summary_table())


if __name__ == "__main__":
    main()
