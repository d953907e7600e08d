"""Benchmark: the StyleGAN2 synthesis network on CPU, before and after three changes to how it is computed.

:class:`latentedit.faces.stylegan2.Generator` computes the same function four ways here:

- **before**: upstream's ``upfirdn2d_native`` order — zeros inserted into one buffer, ``F.pad`` into a second, an
  unpadded depthwise convolution — on contiguous (N, C, H, W) activations;
- **padding**: the FIR filters take the symmetric part of their padding as the convolution's own ``padding`` (and
  the upsampling's zeros and padding share one buffer), so the blur after each upsampling convolution no longer
  copies its input (:func:`~latentedit.faces.stylegan2.upfirdn2d`); the same zeros and products, so the same numbers;
- **layout**: that, with the activations in channels-last order on CPU
  (:func:`~latentedit.faces.stylegan2.memory_layout`), where oneDNN's convolutions are fastest;
- **now**: that, with :class:`~latentedit.faces.stylegan2.StyledConv`'s epilogue folded — demodulation, noise,
  bias, leaky ReLU and its √2 gain as one ``addcmul`` and in-place passes instead of upstream's five allocating
  ones — and, for the DLSGAN generator, no noise pass at all (its strengths are zero; before, the stored zero maps
  were added).

For the digits W+ generator (the default world: the evaluation's renders are eager forwards, the per-image
inversion forward + backward to the codes) and for an upstream-width 256-px generator (faces-sized layers), it prints
ms per image and

    speed-up = t(before) / t(variant)        max |diff| = the largest |image difference| to before

Usage::

    python bench/synthesis_cpu.py [--batch 32 128] [--threads 1] [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys

import torch
from _timing import timed  # bench/ is on sys.path when run as a script
from torch.nn import functional as F

import latentedit.faces.stylegan2 as stylegan2
from latentedit.dlsgan.stylegan import DLSStyleGenerator
from latentedit.faces.stylegan2 import Generator

OWN_PADDING, LAYOUT, FOLDED = stylegan2.upfirdn2d, stylegan2.memory_layout, stylegan2.StyledConv.forward


def copy_upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """The formulation before: zero insertion, ``F.pad`` into a new tensor, an unpadded depthwise convolution."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    kh, kw = kernel.shape
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).view(1, 1, kh, kw).expand(c, 1, kh, kw)
    return F.conv2d(x, weight, groups=c)


def upstream_epilogue(self, x: torch.Tensor, style: torch.Tensor, noise=None) -> torch.Tensor:
    """StyledConv as upstream computes it: demodulated convolution, noise added, then ``fused_leaky_relu`` — each a
    new activation. ``noise=False`` (the DLSGAN generator) adds a zero map, as its stored noise did before."""
    out = self.conv(x, style)
    if noise is False:
        noise = out.new_zeros(1, 1, *out.shape[2:])
    return self.activate(self.noise(out, noise=noise))


IDENTITY = lambda x: x  # noqa: E731
VARIANTS = {"before": (copy_upfirdn2d, IDENTITY, upstream_epilogue),
            "padding": (OWN_PADDING, IDENTITY, upstream_epilogue),
            "layout": (OWN_PADDING, LAYOUT, upstream_epilogue),
            "now": (OWN_PADDING, LAYOUT, FOLDED)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    torch.manual_seed(0)
    digits = DLSStyleGenerator(128, 32, 1, (64, 64, 64, 32), 4).eval().requires_grad_(False)  # the default world's G
    faces = Generator(256, 512, 2).eval().requires_grad_(False)  # upstream widths, 256 px (FFHQ's is 1024)
    generators = [(f"digits W+ {digits.n_latent}×128 → 32 px", digits.n_latent, 128,
                   lambda w: digits.render(w, "wplus"), args.batch, ("forward", "fwd+bwd")),
                  (f"upstream widths {faces.n_latent}×512 → 256 px", faces.n_latent, 512,
                   lambda w: faces.synthesis(w), [4], ("forward",))]
    print(f"threads {args.threads}, median of {args.repeats}; speed-up = t(before) / t(variant), "
          f"max |diff| = largest |image − before's image|")
    names = list(VARIANTS)
    print(f"{'generator':<34} {'batch':>5} {'pass':>8} " + " ".join(f"{n:>8}" for n in names) + "   speed-up "
          + " ".join(f"{n:>7}" for n in names[1:]) + "   max |diff| " + " ".join(f"{n:>8}" for n in names[1:]))
    for label, n_latent, dim, render, batches, modes in generators:
        for batch in batches:
            for mode in modes:
                def run(w, render=render, mode=mode):
                    with torch.set_grad_enabled(mode == "fwd+bwd"):
                        image = render(w)
                        if mode == "fwd+bwd":
                            image.square().sum().backward()
                    return image.detach()

                times, images = {}, {}
                for name, (upfirdn2d, layout, styled_conv) in VARIANTS.items():
                    stylegan2.upfirdn2d, stylegan2.memory_layout = upfirdn2d, layout
                    stylegan2.StyledConv.forward = styled_conv
                    torch.manual_seed(1)  # the same codes for every variant
                    w = torch.randn(batch, n_latent, dim).requires_grad_(mode == "fwd+bwd")
                    times[name] = timed(lambda w=w: run(w), device, args.repeats)
                    images[name] = run(w)
                stylegan2.upfirdn2d, stylegan2.memory_layout, stylegan2.StyledConv.forward = OWN_PADDING, LAYOUT, FOLDED
                print(f"{label:<34} {batch:>5} {mode:>8} "
                      + " ".join(f"{1e3 * times[n] / batch:>8.2f}" for n in names) + "   ms/img   "
                      + " ".join(f"{times['before'] / times[n]:>7.2f}" for n in names[1:]) + "              "
                      + " ".join(f"{float((images[n] - images['before']).abs().max()):>8.1e}" for n in names[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
