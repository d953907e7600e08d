"""Benchmark: StyleGAN2's modulated convolution as one grouped convolution per batch vs a shared-weight convolution.

Two formulations of the same function (:class:`latentedit.faces.stylegan2.ModulatedConv2d`):

- **grouped** (upstream rosinality's fused path, the project's before this benchmark): build B per-sample weights
  w·s_b/√fan_in, demodulate them, and run one convolution with B groups;
- **shared** (official StyleGAN2's ``fused_modconv=False``, the project's now): scale the input's channels by s_b,
  one ordinary convolution with the shared weight, scale the output's channels by the demodulation factor.

It times forward + backward (to the input and the styles, as inversion and training need) and forward only, for the
narrow digits StyleGAN2's layers and for its whole synthesis network rendering W+ codes, and prints

    speed-up = t(grouped) / t(shared)      and the largest |difference| of their outputs.

Usage::

    python bench/modconv.py [--batch 32 256] [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys

import torch
from _timing import timed  # bench/ is on sys.path when run as a script
from torch.nn import functional as F

from latentedit.dlsgan.stylegan import DLSStyleGenerator
from latentedit.faces.stylegan2 import ModulatedConv2d

SHARED_FORWARD = ModulatedConv2d.forward


def grouped_forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Upstream's fused path: per-sample weights (B, out, in, k, k), one convolution with B groups."""
    batch, in_channel, height, width = x.shape
    k = self.kernel_size
    weight = self.scale * self.weight * self.modulation(style).view(batch, 1, in_channel, 1, 1)
    if self.demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps).view(batch, self.out_channel, 1, 1, 1)
    x = x.reshape(1, batch * in_channel, height, width)
    if self.upsample:
        weight = weight.transpose(1, 2).reshape(batch * in_channel, self.out_channel, k, k)
        out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
        return self.blur(out.view(batch, self.out_channel, out.shape[-2], out.shape[-1]))
    out = F.conv2d(x, weight.reshape(batch * self.out_channel, in_channel, k, k), padding=self.padding, groups=batch)
    return out.reshape(batch, self.out_channel, out.shape[-2], out.shape[-1])


FORMULATIONS = {"grouped": grouped_forward, "shared": SHARED_FORWARD}


def time_both(make_inputs, run, repeats: int) -> tuple[dict, float]:
    """Seconds of run(*inputs) under each formulation, and the largest |difference| of their outputs."""
    times, outputs = {}, {}
    device = torch.device("cpu")
    for name, forward in FORMULATIONS.items():
        ModulatedConv2d.forward = forward
        inputs = make_inputs()
        times[name] = timed(lambda inputs=inputs: run(*inputs), device, repeats)
        outputs[name] = run(*inputs).detach()
    ModulatedConv2d.forward = SHARED_FORWARD
    return times, float((outputs["grouped"] - outputs["shared"]).abs().max())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = DLSStyleGenerator(128, 32, 1, (64, 64, 64, 32), 4).eval().requires_grad_(False)  # the digits W+ world's G
    layers = [("conv 64→64, 8 px", ModulatedConv2d(64, 64, 3, 128), 8),
              ("conv 64→64, 16 px", ModulatedConv2d(64, 64, 3, 128), 16),
              ("up 64→32, 16→32 px", ModulatedConv2d(64, 32, 3, 128, upsample=True), 16),
              ("conv 32→32, 32 px", ModulatedConv2d(32, 32, 3, 128), 32)]
    print(f"threads {args.threads}, median of {args.repeats}; speed-up = t(grouped) / t(shared)")
    print(f"{'what':<34} {'batch':>5} {'pass':>9} {'grouped ms':>11} {'shared ms':>10} {'speed-up':>9} {'max |diff|':>11}")
    for batch in args.batch:
        cases = [(label, lambda m=m, h=h, b=batch: (m, torch.randn(b, m.in_channel, h, h), torch.randn(b, 128)))
                 for label, m, h in layers]
        cases.append((f"synthesis, W+ {g.n_latent}×128 → 32 px",
                      lambda b=batch: (None, torch.randn(b, g.n_latent, 128), None)))
        for label, make in cases:
            for mode in ("forward", "fwd+bwd"):
                def make_inputs(make=make, mode=mode):
                    torch.manual_seed(1)  # the same inputs for both formulations
                    module, x, style = make()
                    x = x.requires_grad_(mode == "fwd+bwd")
                    style = style.requires_grad_(mode == "fwd+bwd") if style is not None else None
                    return module, x, style

                def run(module, x, style, mode=mode):
                    with torch.set_grad_enabled(mode == "fwd+bwd"):
                        out = g.render(x, "wplus") if module is None else module(x, style)
                        if mode == "fwd+bwd":
                            out.square().sum().backward()
                    return out

                times, diff = time_both(make_inputs, run, args.repeats)
                print(f"{label:<34} {batch:>5} {mode:>9} {1e3 * times['grouped']:>11.1f} {1e3 * times['shared']:>10.1f} "
                      f"{times['grouped'] / times['shared']:>9.2f} {diff:>11.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
