#!/usr/bin/env python3
"""Inception-v3 weights for diffvit's FID (lib/eval/inception.ts), as safetensors.

The network is the one the standard FID code uses: TensorFlow's 2015-12-05 Inception graph as
ported by pytorch-fid (`pt_inception-2015-12-05-6726825d.pth`, torchvision's Inception3 with the
FIDInceptionA/C/E_1/E_2 blocks), whose 2048-d pool3 features EDM and most papers report FID on.
Users supply the weights; nothing here downloads anything.

  # convert pytorch-fid's weights (and optionally print/export reference features to cross-check)
  python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth inception.safetensors

  # the same graph with random weights and BN statistics (parity tests), plus reference features
  python3 scripts/convert_inception.py --random OUT.safetensors --seed 0 \\
      --inputs X.f32 --count N --size S --features F.f32 [--inputs ... (repeatable group)]

--inputs is raw little-endian float32 images (N, 3, S, S) in [-1, 1]; --features receives the
float32 (N, 2048) pool3 features computed exactly as pytorch-fid's InceptionV3 does (resize to
299×299 bilinear, align_corners=False, of the [0, 1] image, then 2x - 1). The safetensors file
keeps pytorch-fid's state_dict names (Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.running_var,
Mixed_5b.branch1x1.conv.weight, ...) without num_batches_tracked and without the classifier fc.

Needs python3 with torch (no torchvision, no safetensors package).
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------------
# The network: torchvision's Inception3 blocks with pytorch-fid's FID variants (same module names,
# so pytorch-fid's state_dict loads strictly).


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class FIDInceptionA(nn.Module):
    """InceptionA whose pool branch averages without counting the padding (TF's avg pool)."""

    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class FIDInceptionC(nn.Module):
    """InceptionC whose pool branch averages without counting the padding."""

    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            branch7x7dbl = layer(branch7x7dbl)
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            branch7x7x3 = layer(branch7x7x3)
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class FIDInceptionE(nn.Module):
    """InceptionE; pytorch-fid's E_1 (Mixed_7b) averages without the padding in its pool branch,
    E_2 (Mixed_7c) takes the max there (a quirk of the TF graph)."""

    def __init__(self, in_channels, pool):
        super().__init__()
        assert pool in ("avg", "max")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        if self.pool == "avg":
            branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        else:
            branch_pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's fid_inception_v3(): torchvision Inception3 (1008 classes, no aux logits) with the
    FID blocks. forward() returns the 2048-d pool3 features of images in [-1, 1], as pytorch-fid's
    InceptionV3(output_blocks=[3]) does for images in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x):
        # pytorch-fid: resize the [0, 1] image to 299×299, then scale to [-1, 1]
        x = (x + 1) / 2
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, "Mixed_" + name)(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


# ------------------------------------------------------------------------------------------------
# Random weights whose activations stay well scaled through the 94 conv layers: He-normal convs,
# random affine BN parameters, and BN statistics measured on random images in training mode, then
# perturbed a little (means by 5% of a standard deviation, variances by ~10%: more compounds over
# the depth into features of scale 30+). The BN folding diffvit does at load time is thus
# exercised with statistics far from (0, 1), as in the real network.


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.2
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one calibration batch sets the statistics
        elif isinstance(m, nn.Linear):
            m.weight.data = torch.randn(m.weight.shape, generator=g) * 0.02
            m.bias.data.zero_()
    model.train()
    with torch.no_grad():
        # upscaled low-resolution noise, like the generated images FID is mostly asked about
        # (full-resolution white noise would calibrate the layers for a very different input)
        for size in (32, 64):
            model(torch.rand(4, 3, size, size, generator=g) * 2 - 1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            std = m.running_var.sqrt()
            m.running_mean += torch.randn(m.running_mean.shape, generator=g) * 0.05 * std
            m.running_var *= torch.exp(torch.randn(m.running_var.shape, generator=g) * 0.1)
            m.momentum = 0.1
    model.eval()


# ------------------------------------------------------------------------------------------------
# safetensors without the safetensors package (as shared/reference/diffvit_torch.py)


def save_safetensors(tensors, path, metadata=None):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def exported_state(model):
    """The state_dict diffvit reads: every conv/bn tensor, no num_batches_tracked, no classifier."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked") and not k.startswith("fc.")}


def features(model, path, count, size, batch=8):
    import numpy as np

    x = np.fromfile(path, dtype="<f4")
    if x.size != count * 3 * size * size:
        sys.exit(f"convert_inception: {path} holds {x.size} floats, --count {count} --size {size} needs {count * 3 * size * size}")
    x = torch.from_numpy(x.copy()).reshape(count, 3, size, size)
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]) for i in range(0, count, batch)])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", nargs="?", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("out", nargs="?", help="the safetensors file to write")
    p.add_argument("--random", metavar="OUT", help="write random weights of the same graph to OUT instead")
    p.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    # repeatable as a group: the k-th --inputs goes with the k-th --count, --size and --features
    p.add_argument("--inputs", action="append", default=[], help="float32 images (N, 3, S, S) in [-1, 1] to compute reference features of")
    p.add_argument("--count", type=int, action="append", default=[], help="N of --inputs")
    p.add_argument("--size", type=int, action="append", default=[], help="S of --inputs")
    p.add_argument("--features", action="append", default=[], help="where to write the float32 (N, 2048) features of --inputs")
    a = p.parse_args()

    model = FIDInceptionV3()
    if a.random:
        if a.weights or a.out:
            p.error("--random OUT takes no positional arguments")
        randomize(model, a.seed)
        out, meta = a.random, {"format": "pytorch-fid-inception-v3", "weights": f"random (seed {a.seed})"}
    else:
        if not (a.weights and a.out):
            p.error("give WEIGHTS.pth OUT.safetensors, or --random OUT.safetensors")
        with open(a.weights, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if not digest.startswith("6726825d"):
            print(f"convert_inception: warning: {a.weights} has sha256 {digest[:8]}..., pytorch-fid's file starts 6726825d", file=sys.stderr)
        state = torch.load(a.weights, map_location="cpu")
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            sys.exit(f"convert_inception: {a.weights} is not pytorch-fid's FID Inception: missing {missing[:5]}, unexpected {unexpected[:5]}")
        model.eval()
        out, meta = a.out, {"format": "pytorch-fid-inception-v3", "weights": "pt_inception-2015-12-05", "sha256": digest}

    state = exported_state(model)
    save_safetensors(state, out, meta)
    print(f"convert_inception: wrote {len(state)} tensors ({sum(t.numel() for t in state.values())} values) to {out}", file=sys.stderr)

    if not len(a.inputs) == len(a.count) == len(a.size) == len(a.features):
        p.error("each --inputs needs its --count, --size and --features")
    for inputs, count, size, out_path in zip(a.inputs, a.count, a.size, a.features):
        f = features(model, inputs, count, size)
        f.numpy().astype("<f4").tofile(out_path)
        print(f"convert_inception: wrote features {tuple(f.shape)} of {inputs} to {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
