"""The PyTorch twin's training step and sampling, timed for bench/gpu.mjs.

    python3 bench/gpu/torch_twin_bench.py --twin PATH/diffvit_torch.py --what train|sample [--compile]
        [--preset iuvit-s/2 | --config JSON] [--batch 128] [--samples 512] [--steps 18]
        [--warmup 3] [--iters 10] [--no-bf16] [--device cuda]

Imports the twin (../shared/reference/diffvit_torch.py, or --twin) and uses its own pieces:
  train   the step of the twin's `bench` command, unchanged: EDM loss (edm_loss, EDMPrecond) under
          torch.autocast(bfloat16), backward, AdamW — on a fixed batch y ~ 0.5·N(0, 1);
  sample  edm_heun_sampler (EDM's Heun, `steps` steps = 2·steps − 1 network evaluations; the twin's
          sampler keeps x in float64 between steps) from fixed latents, under torch.autocast(bfloat16),
          the images copied to the host at the end (as diffvit's generate returns them).
--compile wraps the network in torch.compile (default mode); the first warm-up call, which compiles,
is reported apart as first_call_s. Each timed iteration is wall-clock time around one call followed
by torch.cuda.synchronize() (the per-call latency a user sees, as diffvit's trainStep and generate,
which read the step's loss / the images back, are timed), with its CUDA-event device time beside it.

Prints one JSON object on its last line; on failure {"error": "..."} and exit status 1.
"""
import argparse
import json
import statistics
import sys
import time
import traceback


def stats(ms):
    s = sorted(ms)
    q = lambda p: s[min(len(s) - 1, max(0, int(round(p * (len(s) - 1)))))]
    return {"median_ms": statistics.median(s), "min_ms": s[0], "max_ms": s[-1], "p25_ms": q(0.25), "p75_ms": q(0.75),
            "mean_ms": statistics.fmean(s), "n": len(s)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--twin", required=True)
    ap.add_argument("--what", choices=["train", "sample"], required=True)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--preset", default="iuvit-s/2")
    ap.add_argument("--config", help="a model config as JSON (instead of --preset)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--steps", type=int, default=18)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import os
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.twin)))
    import diffvit_torch as t

    dev = a.device if (a.device != "cuda" or torch.cuda.is_available()) else "cpu"
    cuda = dev == "cuda"
    if a.compile and not hasattr(torch, "compile"):
        raise RuntimeError("torch.compile is not available in torch %s" % torch.__version__)
    torch.manual_seed(a.seed)
    cfg = json.loads(a.config) if a.config else dict(t.PRESETS[a.preset])
    net = t.DiffusionViT(**cfg).to(dev)
    D = t.EDMPrecond(torch.compile(net) if a.compile else net)
    c = net.cfg
    autocast = lambda: torch.autocast(dev, dtype=torch.bfloat16, enabled=a.bf16 and cuda)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    if a.what == "train":
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        y = torch.randn(a.batch, c["in_chans"], c["img_size"], c["img_size"], device=dev) * 0.5
        images = a.batch

        def call():
            with autocast():
                loss = t.edm_loss(D, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        net.eval()
        g = torch.Generator(device=dev).manual_seed(a.seed + 1)
        latents = torch.randn(a.samples, c["in_chans"], c["img_size"], c["img_size"], device=dev, generator=g)
        images = a.samples

        def call():
            with autocast():
                return t.edm_heun_sampler(D, latents, num_steps=a.steps).cpu()

    first = None
    for i in range(a.warmup):
        t0 = time.perf_counter()
        call()
        sync()
        if i == 0:
            first = time.perf_counter() - t0
    wall, device_ms = [], []
    for _ in range(a.iters):
        ev = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) if cuda else None
        t0 = time.perf_counter()
        if ev:
            ev[0].record()
        call()
        if ev:
            ev[1].record()
        sync()
        wall.append((time.perf_counter() - t0) * 1e3)
        if ev:
            device_ms.append(ev[0].elapsed_time(ev[1]))
    s = stats(wall)
    out = {"what": a.what, "compile": a.compile, "torch": torch.__version__, "device": torch.cuda.get_device_name() if cuda else "cpu",
           "config": cfg, "params": sum(p.numel() for p in net.parameters()), "bf16_autocast": a.bf16 and cuda,
           "images": images, "warmup": a.warmup, "first_call_s": first, "wall": s,
           "img_per_s": images / (s["median_ms"] * 1e-3)}
    if a.what == "train":
        out["batch"] = a.batch
    else:
        out.update(samples=a.samples, steps=a.steps, evaluations=2 * a.steps - 1)
    if device_ms:
        out["events"] = stats(device_ms)
    if cuda:
        out["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except BaseException as e:  # one JSON line either way: bench/gpu.mjs records the error and goes on
        if isinstance(e, SystemExit) and not e.code:
            raise
        traceback.print_exc(file=sys.stderr)
        print(json.dumps({"error": ("%s: %s" % (type(e).__name__, e)).splitlines()[0][:500]}))
        sys.exit(1)
