"""PyTorch's scaled_dot_product_attention on the GPU: the baseline of bench/gpu.mjs's attention cases.

    python3 bench/gpu/torch_attention.py --cases '[[128,8,257,64],[32,8,1025,64]]' [--dtypes float32,bfloat16]
                                         [--warmup 3] [--iters 10] [--device cuda]

For each (B, H, N, D) and dtype, times the forward and the forward+backward (torch.autograd.grad of
the output against dy, so no .grad accumulates) with one pair of torch.cuda.Event per iteration, after
`warmup` untimed calls. q, k and v are read in place from one (B, N, 3, H, D) tensor, permuted to
(B, H, N, D) — the layout the twin's Attention hands to SDPA and diffvit's attention reads — in the
case's dtype (bf16 tensors for the bf16 case: torch's bf16 path reads and writes bf16, diffvit's
reads and writes fp32 and rounds the operands to bf16 on the way into the tensor cores).

Which SDPA backend ran (flash, efficient, cudnn, math) is read off the names of the CUDA kernels
of one extra call, recorded with torch.profiler.

Prints one JSON object on its last line: {"torch": version, "device": name, "cases": [...]}; a case
that fails records its error and the others go on. --device cpu (or no CUDA) times with
time.perf_counter instead of events, for smoke tests without a GPU; torch without
F.scaled_dot_product_attention (before 2.0) runs the twin's matmul-softmax-matmul.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def stats(ms):
    s = sorted(ms)
    q = lambda p: s[min(len(s) - 1, max(0, int(round(p * (len(s) - 1)))))]
    return {"median_ms": statistics.median(s), "min_ms": s[0], "max_ms": s[-1], "p25_ms": q(0.25), "p75_ms": q(0.75),
            "mean_ms": statistics.fmean(s), "n": len(s)}


def sdpa(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    w = torch.softmax((q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5), dim=-1)
    return w @ v


def timer(device):
    """Returns time_one(fn) -> milliseconds of one call (device time with events on CUDA)."""
    if device.type == "cuda":
        def time_one(fn):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            return (a, b)
        def collect(pairs):
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in pairs]
        return time_one, collect

    def time_one_cpu(fn):
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    return time_one_cpu, lambda xs: list(xs)


def run(fn, warmup, iters, device):
    time_one, collect = timer(device)
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return stats(collect([time_one(fn) for _ in range(iters)]))


def which_backend(fn, device):
    """The SDPA backend behind fn: the aten op SDPA dispatched to, else the CUDA kernels' names."""
    if not hasattr(F, "scaled_dot_product_attention"):
        return "math (torch %s has no scaled_dot_product_attention: matmul, softmax, matmul)" % torch.__version__
    try:
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
        names = [e.key for e in prof.key_averages()]
    except Exception as e:  # the profiler is a nicety: never fail the case for it
        return "unknown (profiler failed: %s)" % str(e).splitlines()[0][:200]
    ops = [n for n in names if n.startswith("aten::_scaled_dot_product")]
    kernels = [n for n in names if not n.startswith("aten::") and any(t in n.lower() for t in ("flash", "fmha", "cudnn", "sdpa", "attention", "cutlass"))]
    low = " ".join(ops + kernels).lower()
    label = "cudnn" if "cudnn" in low else "flash" if "flash" in low else "efficient" if any(
        t in low for t in ("efficient", "fmha", "mem_eff", "cutlass")) else "math"
    detail = ops[:1] + kernels[:1]
    return "%s (%s)" % (label, "; ".join(d[:160] for d in detail) or "no SDPA-specific op or kernel seen")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", required=True, help="JSON list of [B, H, N, D]")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    device = torch.device(a.device if (a.device != "cuda" or torch.cuda.is_available()) else "cpu")
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "timing": "torch.cuda.Event per iteration" if device.type == "cuda" else "time.perf_counter per iteration",
           "layout": "q, k, v permuted in place from one (B, N, 3, H, D) tensor", "cases": []}
    if device.type == "cuda":
        out["cuda"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version()
    torch.manual_seed(a.seed)
    for B, H, N, D in json.loads(a.cases):
        for dt in a.dtypes.split(","):
            case = {"B": B, "H": H, "N": N, "D": D, "dtype": dt}
            out["cases"].append(case)
            try:
                dtype = getattr(torch, dt)
                qkv = torch.randn(B, N, 3, H, D, device=device, dtype=dtype).permute(2, 0, 3, 1, 4)
                q, k, v = (x.detach().requires_grad_() for x in qkv)
                dy = torch.randn(B, H, N, D, device=device, dtype=dtype)

                def fwd_nograd():
                    with torch.no_grad():
                        sdpa(q, k, v)

                def both():
                    o = sdpa(q, k, v)
                    torch.autograd.grad(o, (q, k, v), dy)

                case["backend"] = which_backend(fwd_nograd, device)
                case["fwd"] = run(fwd_nograd, a.warmup, a.iters, device)
                case["fwd_bwd"] = run(both, a.warmup, a.iters, device)
                flops = 4 * B * H * N * N * D
                case["fwd"]["tflops"] = flops / (case["fwd"]["median_ms"] * 1e-3) / 1e12
                case["fwd_bwd"]["tflops"] = 3.5 * flops / (case["fwd_bwd"]["median_ms"] * 1e-3) / 1e12
                del q, k, v, dy, qkv
            except Exception as e:  # record and go on (out of memory, an unsupported dtype on CPU, ...)
                case["error"] = ("%s: %s" % (type(e).__name__, e)).splitlines()[0][:500]
            if device.type == "cuda":
                torch.cuda.empty_cache()
            what = case.get("error") or "fwd %.3f ms, fwd+bwd %.3f ms, %s" % (
                case["fwd"]["median_ms"], case["fwd_bwd"]["median_ms"], case["backend"].split(" (")[0])
            print("torch attention B=%d H=%d N=%d D=%d %s: %s" % (B, H, N, D, dt, what), file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
