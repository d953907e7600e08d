"""A pure-PyTorch StyleGAN2 generator with rosinality's ``stylegan2-pytorch`` state_dict layout and maths.

``Generator(size, style_dim, n_mlp, channel_multiplier)`` has the same ``state_dict()`` keys, shapes and order as
rosinality's ``model.Generator`` (commit bef283a, the layout of the public FFHQ ``g_ema`` and of pSp's decoder),
including the persistent ``noises.noise_i`` and FIR ``kernel`` buffers, so those checkpoints load with
``strict=True``. The forward pass reproduces upstream's CPU reference path (``upfirdn2d_native`` and
``fused_leaky_relu(x, b) = leaky_relu(x + b, 0.2) * sqrt(2)``) without custom CUDA ops; the golden vectors of
``../shared/compat`` (``tests/test_faces_stylegan2.py``) check it to float32 round-off. Two options outside
upstream's constructor, ``channels`` (per-resolution widths) and ``out_channels`` (image channels), describe narrow
generators for small images in the same key layout (the DLSGAN digits generator, :mod:`latentedit.dlsgan.stylegan`);
their defaults build upstream's network exactly.

Notation: B = batch, L = ``n_latent`` = 2·log2(size) − 2 style inputs, D = ``style_dim``.

Speed: :func:`precision_context` (or ``Generator.synthesis(..., precision=...)``) selects

* ``"fp32"``: true float32; on CUDA TF32 is switched off for matmuls and cuDNN convolutions inside the context;
* ``"tf32"``: float32 tensors, TF32 tensor-core matmuls/convolutions allowed on CUDA (identical to fp32 on CPU);
* ``"bf16"``: ``torch.autocast(device_type, dtype=torch.bfloat16)``; convolutions and linears run in bfloat16,
  the image is returned as float32. Works on CPU too (slowly); expect differences of order 1e-2 to the fp32 image.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import re
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from latentedit.io.checkpoints import CheckpointError, load_state_dict_strict

PRECISIONS = ("fp32", "tf32", "bf16")
SQRT2 = 2**0.5


# ----------------------------------------------------------------------------------------------------------- ops
def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, negative_slope: float = 0.2,
                     scale: float = SQRT2) -> torch.Tensor:
    """Upstream's ``fused_leaky_relu`` (CPU formula): ``leaky_relu(x + bias, 0.2) * sqrt(2)``.

    Parameters
    ----------
    x : (B, C, ...) tensor
    bias : (C,) tensor, broadcast over the batch and any trailing dimensions.
    """
    b = bias.view(1, bias.shape[0], *([1] * (x.ndim - 2)))
    return F.leaky_relu(x + b, negative_slope=negative_slope) * scale


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, and apply a 2-D FIR filter (upstream ``upfirdn2d_native`` with down=1).

    Each sample is followed by ``up - 1`` zeros along both axes, then ``pad = (before, after)`` zeros are added on
    both axes, then the signal is correlated with the flipped ``kernel`` (i.e. convolved with ``kernel``) per channel.

    Parameters
    ----------
    x : (B, C, H, W) tensor
    kernel : (kh, kw) tensor
    up : int
        Upsampling factor.
    pad : (int, int)
        Non-negative padding before and after, applied to both spatial axes.

    Returns
    -------
    (B, C, H·up + pad0 + pad1 − kh + 1, W·up + pad0 + pad1 − kw + 1) tensor
    """
    b, c, h, w = x.shape
    p0, p1 = pad
    if p0 < 0 or p1 < 0:
        raise ValueError(f"upfirdn2d: negative padding {pad} is not supported")
    if up > 1:  # the zeros between samples and the padding in one buffer
        z = x.new_zeros(b, c, h * up + p0 + p1, w * up + p0 + p1)
        z[:, :, p0:p0 + h * up:up, p0:p0 + w * up:up] = x
        x, p0, p1 = z, 0, 0
    # The symmetric part of the padding is the convolution's own: no padded copy of x (bench/synthesis_cpu.py).
    inner = min(p0, p1)
    if p0 != p1:
        x = F.pad(x, [p0 - inner, p1 - inner] * 2)
    kh, kw = kernel.shape
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).view(1, 1, kh, kw).expand(c, 1, kh, kw)
    return F.conv2d(x, weight, padding=inner, groups=c)


def memory_layout(x: torch.Tensor) -> torch.Tensor:
    """The synthesis network's activations on CPU in channels-last order, where oneDNN's convolutions are fastest.

    Every later layer keeps the layout. ``bench/synthesis_cpu.py``, digits W+ generator, one thread, alone: the eager
    forward 1.26× (batch 32 and 128) and forward + backward 1.14× (32) to 1.63× (128) faster than contiguous
    (N, C, H, W) with the padded copies, to float rounding (≤ 5e-6 of the image); an upstream-width 256-px generator
    1.04×. Under bf16 autocast the layout is needed too: on CPUs without native bf16, oneDNN runs bf16 convolutions
    only in channels-last order and falls back to a reference kernel ~30× slower on contiguous tensors. The compiled
    per-image inversion chooses its own layouts (no change measured). CUDA keeps the contiguous layout (not measured
    on a GPU).
    """
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def make_kernel(k: Sequence[float]) -> torch.Tensor:
    """Normalised separable FIR kernel: ``outer(k, k) / sum``, shape (len(k), len(k))."""
    k = torch.tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


# ------------------------------------------------------------------------------------------------------- layers
class PixelNorm(nn.Module):
    """Normalise each vector to unit root-mean-square over dim 1: ``x / sqrt(mean(x²) + 1e-8)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class Upsample(nn.Module):
    """2× FIR upsampling (zero insertion + ``kernel`` × factor²), used on the ToRGB skip path.

    Buffer ``kernel`` (k, k) = ``make_kernel(blur_kernel) * factor**2``.
    """

    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        k = make_kernel(kernel) * (factor**2)
        self.register_buffer("kernel", k)
        p = k.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, 2H, 2W)."""
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    """FIR low-pass filter with padding ``pad``; after a stride-2 transposed conv the kernel is scaled by factor²."""

    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        k = make_kernel(kernel)
        if upsample_factor > 1:
            k = k * (upsample_factor**2)
        self.register_buffer("kernel", k)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H + pad0 + pad1 − k + 1, W + pad0 + pad1 − k + 1)."""
        return upfirdn2d(x, self.kernel, pad=self.pad)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: weights stored unscaled, multiplied by ``lr_mul / sqrt(in_dim)``
    (bias by ``lr_mul``) at run time; optional fused leaky ReLU.

    Parameters ``weight`` (out_dim, in_dim) and ``bias`` (out_dim,).
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: str | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init)) if bias else None
        self.activation = activation
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) → (B, out_dim)."""
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, bias=bias)


class FusedLeakyReLU(nn.Module):
    """Per-channel bias followed by ``leaky_relu(·, 0.2) * sqrt(2)``. Parameter ``bias`` (C,)."""

    def __init__(self, channel: int, negative_slope: float = 0.2, scale: float = SQRT2):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution: per-sample weights ``w·s/sqrt(fan_in)`` scaled by the style ``s``,
    optionally demodulated to unit norm per output channel; optional 2× upsampling by a stride-2 transposed conv
    followed by a FIR blur.

    Computed as StyleGAN2's non-fused path (official ``fused_modconv=False``): scale the input's channels by s, one
    ordinary convolution with the shared weight, then scale the output's channels by the demodulation
    d_bo = (Σ_{i,k} (w_oik·s_bi/√fan_in)² + 1e-8)^−½ — the same function as upstream rosinality's fused, per-sample
    grouped convolution (to float rounding, ≤ 1e-5 here; the golden tests compare against upstream's outputs), but
    without B groups. ``bench/modconv.py``, one CPU thread, alone: the digits W+ generator's whole synthesis network ran
    forward + backward 2.3× (batch 32) and 1.9× (batch 256) faster, forward 1.5× and 2.2×; a 64-channel layer at 8 px
    4–8×, at 16 px 1.8–2.5×, the 32-channel 32 px layer about the same (0.9–1.2×).

    Parameters ``weight`` (1, out, in, k, k) and ``modulation`` = EqualLinear(style_dim → in, bias_init=1);
    buffer ``blur.kernel`` when upsampling.
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.eps = 1e-8
        self.kernel_size = kernel_size
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.upsample = upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x (B, in, H, W), style (B, style_dim) → (B, out, H', W') with H' = 2H when upsampling, else H."""
        out, demod = self.convolve(x, style)
        return out if demod is None else out * demod.view(*demod.shape, 1, 1)

    def convolve(self, x: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The modulated convolution (and blur) before its demodulation: ``(out, d)``, d (B, out) the factors
        :meth:`forward` scales ``out``'s channels by (None without demodulation), for a caller that folds them into
        what follows (:class:`StyledConv`). The blur is a per-channel linear filter, so it commutes with d."""
        batch = x.shape[0]
        s = self.modulation(style)  # (B, in)
        weight = self.scale * self.weight[0]  # (out, in, k, k), shared by the batch
        x = x * s.view(batch, self.in_channel, 1, 1)  # channels-last on CPU in the synthesis network: memory_layout
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), padding=0, stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if not self.demodulate:
            return out, None
        return out, torch.rsqrt(s.pow(2) @ weight.pow(2).sum([2, 3]).T + self.eps)  # (B, out)


class NoiseInjection(nn.Module):
    """Adds per-pixel noise scaled by a learned strength: ``x + weight * noise``. Parameter ``weight`` (1,)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W); noise (B or 1, 1, H, W), drawn from N(0, 1) when None."""
        if noise is None:
            b, _, h, w = x.shape
            noise = x.new_empty(b, 1, h, w).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """The learned constant 4×4 input of the synthesis network. Parameter ``input`` (1, C, 4, 4)."""

    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (B, ...) → (B, C, 4, 4)."""
        return self.input.repeat(latent.shape[0], 1, 1, 1)


class StyledConv(nn.Module):
    """Modulated 3×3 conv (optionally upsampling 2×), noise injection, fused leaky ReLU with bias:
    ``leaky_relu(conv·d + w_n·noise + b, 0.2)·√2`` (d the demodulation, w_n the noise strength, b the bias).

    The epilogue after the convolution runs as one ``addcmul`` and in-place passes over the activations, not as
    upstream's five separate ones (demodulate, add noise, add bias, leaky ReLU, gain), each allocating a new
    activation: the gain is positive, so leaky_relu(y)·√2 = leaky_relu(√2·y), and √2 folds into d, w_n and b (vectors
    and a scalar). The same function to float rounding (≤ 1e-5 on the images; the golden tests compare against
    upstream's outputs). ``bench/synthesis_cpu.py``, one CPU thread, against the unfolded epilogue: the digits W+
    generator's forward 1.42× faster at batch 128 (the evaluation's renders), forward + backward 1.13×; an
    upstream-width 256-px generator's forward 1.29×.
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int, upsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), demodulate: bool = True):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, demodulate=demodulate,
                                    upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None | bool = None) -> torch.Tensor:
        """x (B, in, H, W), style (B, style_dim) → (B, out, H', W'). ``noise``: (B or 1, 1, H', W') maps, None for
        fresh N(0, 1) noise, False for none (a generator whose noise strengths are zero: the same result, one pass
        less)."""
        out, demod = self.conv.convolve(x, style)
        gain, slope = self.activate.scale, self.activate.negative_slope
        bias = (self.activate.bias * gain).view(1, -1, 1, 1)
        if demod is None:
            out = torch.add(bias, out, alpha=gain)
        else:
            out = torch.addcmul(bias, out, (demod * gain).view(*demod.shape, 1, 1))
        if noise is not False:
            if noise is None:
                noise = out.new_empty(out.shape[0], 1, *out.shape[2:]).normal_()
            out = out.add_(noise * (self.noise.weight * gain))
        return F.leaky_relu_(out, slope)


class ToRGB(nn.Module):
    """Modulated 1×1 conv to the image channels (not demodulated) plus bias, added to the 2×-upsampled previous
    skip image.

    Parameter ``bias`` (1, out_channels, 1, 1) (out_channels = 3 upstream, RGB); buffer ``upsample.kernel`` unless
    ``upsample=False`` (the 4×4 ``to_rgb1``).
    """

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), out_channels: int = 3):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W), style (B, style_dim), skip (B, out_channels, H/2, W/2) or None
        → (B, out_channels, H, W)."""
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# ---------------------------------------------------------------------------------------------------- precision
@contextlib.contextmanager
def _cuda_tf32(allow: bool) -> Iterator[None]:
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def precision_context(precision: str = "fp32", device: str | torch.device = "cpu") -> Iterator[None]:
    """Numeric mode for a block of generator calls.

    Parameters
    ----------
    precision : {"fp32", "tf32", "bf16"}
        ``"fp32"``: float32; on CUDA, TF32 is disabled for matmuls and cuDNN inside the block (PyTorch allows it for
        cuDNN convolutions by default). ``"tf32"``: float32 tensors with TF32 allowed for matmuls and cuDNN on CUDA;
        no effect on CPU. ``"bf16"``: ``torch.autocast(device.type, dtype=torch.bfloat16)``; callers should cast
        results back to float32 (``Generator.synthesis`` does). The previous TF32 flags are restored on exit.
    device : str or torch.device
        Where the computation runs; only its type (``"cuda"``, ``"cpu"``, ...) matters.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dev_type = torch.device(device).type
    with contextlib.ExitStack() as stack:
        if dev_type == "cuda" and precision in ("fp32", "tf32"):
            stack.enter_context(_cuda_tf32(precision == "tf32"))
        if precision == "bf16":
            stack.enter_context(torch.autocast(device_type=dev_type, dtype=torch.bfloat16))
        yield


# ---------------------------------------------------------------------------------------------------- generator
_BASE_CHANNELS = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}  # × channel_multiplier; 512 below 64 px


def default_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """Upstream's width per resolution {4: 512, …, 32: 512, 64: 256·m, …, 1024: 16·m} for multiplier m."""
    return {4: 512, 8: 512, 16: 512, 32: 512,
            **{res: base * channel_multiplier for res, base in _BASE_CHANNELS.items()}}


class Generator(nn.Module):
    """rosinality StyleGAN2 generator: mapping MLP (PixelNorm + ``n_mlp`` EqualLinear, lr_mul ``lr_mlp``) and
    synthesis network (constant input, modulated convs with noise, ToRGB skips) with upstream's state_dict layout.

    Parameters
    ----------
    size : int
        Output resolution, a power of two in 4 … 1024 (1024 for FFHQ).
    style_dim : int
        Dimension D of w (512 for FFHQ).
    n_mlp : int
        Number of mapping layers (8 for FFHQ): keys ``style.1`` … ``style.{n_mlp}`` (``style.0`` is PixelNorm).
    channel_multiplier : int
        Channel width at ≥ 64 px: 256·m at 64, 128·m at 128, 64·m at 256, 32·m at 512, 16·m at 1024 (FFHQ: 2).
    blur_kernel : sequence of float
        1-D FIR taps of the upsampling filters.
    lr_mlp : float
        Learning-rate multiplier of the mapping layers (0.01). It is not in the state_dict yet changes the forward
        pass (EqualLinear stores weight / lr_mul), so every loader here assumes 0.01.
    channels : mapping {resolution: width} or None
        Overrides of the per-resolution widths above (e.g. ``{4: 64, 8: 64, 16: 64, 32: 32}`` for a narrow 32 px
        generator); keys are resolutions 4 … ``size``. None keeps upstream's table.
    out_channels : int
        Image channels of the ToRGB layers (3 upstream; 1 for grey-scale images).
    z_dim : int or None
        Dimension of z, the mapping network's input; None: ``style_dim`` (upstream, where the mapping is square). Other
        values make ``style.1`` a (style_dim, z_dim) layer, the only change to the layout (a DLSGAN with a wide d_z
        and a narrow style, :mod:`latentedit.dlsgan.stylegan`).

    Attributes
    ----------
    n_latent : int
        Number of style inputs L = 2·log2(size) − 2 (18 at 1024).
    num_layers : int
        Number of noise inputs 2·log2(size) − 3 (17 at 1024).
    latent_avg : tensor or None
        Set by :func:`load_generator` when the checkpoint stores a mean latent; not part of the state_dict.
    """

    def __init__(self, size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), lr_mlp: float = 0.01,
                 channels: Mapping[int, int] | None = None, out_channels: int = 3, z_dim: int | None = None):
        super().__init__()
        if not 4 <= size <= 1024 or size & (size - 1):
            raise ValueError(f"size must be a power of two in 4 ... 1024, got {size}")
        self.size = size
        self.style_dim = style_dim
        self.z_dim = style_dim if z_dim is None else int(z_dim)
        self.n_mlp = n_mlp
        self.channel_multiplier = channel_multiplier
        self.out_channels = out_channels
        blur_kernel = tuple(blur_kernel)

        layers: list[nn.Module] = [PixelNorm()]
        for i in range(n_mlp):
            layers.append(EqualLinear(self.z_dim if i == 0 else style_dim, style_dim, lr_mul=lr_mlp,
                                      activation="fused_lrelu"))
        self.style = nn.Sequential(*layers)

        self.channels = default_channels(channel_multiplier)
        overrides = {int(res): int(width) for res, width in (channels or {}).items()}
        bad = {res: width for res, width in overrides.items()
               if res not in self.channels or res > size or width < 1}
        if bad:
            raise ValueError(f"channels: resolutions must be powers of two in 4 ... {size} with widths >= 1, got {bad}")
        self.channels.update(overrides)
        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False, out_channels=out_channels)

        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()  # empty upstream too; kept for attribute parity
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = (layer_idx + 5) // 2
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, 2**res, 2**res))

        in_channel = self.channels[4]
        for i in range(3, self.log_size + 1):
            out_channel = self.channels[2**i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True,
                                         blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, out_channels=out_channels))
            in_channel = out_channel
        self.n_latent = self.log_size * 2 - 2
        self.latent_avg: torch.Tensor | None = None

    # -- mapping ------------------------------------------------------------------------------------------------
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """Mapping network (upstream ``G.style``).

        Parameters
        ----------
        z : (B, z_dim) tensor

        Returns
        -------
        w : (B, D) tensor
        """
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0) -> torch.Tensor:
        """Mean of ``mapping(z)`` over ``n`` seeded z ~ N(0, I) (drawn on the CPU, then moved to the model's device).

        Returns
        -------
        (1, D) tensor, usable as ``truncation_latent``.
        """
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=gen).to(self.input.input.device)
        return self.mapping(z).mean(0, keepdim=True)

    def make_noise(self, batch: int = 1, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Fresh noise inputs, one (batch, 1, r, r) tensor per layer, on the model's device."""
        dev = self.input.input.device
        return [torch.randn(batch, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2), generator=generator).to(dev)
                for i in range(self.num_layers)]

    # -- synthesis ----------------------------------------------------------------------------------------------
    def _noise_list(self, noise) -> list[torch.Tensor | None | bool]:
        if isinstance(noise, str):
            if noise == "const":
                return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
            if noise == "random":
                return [None] * self.num_layers
            if noise == "none":
                return [False] * self.num_layers
            raise ValueError(f"noise must be 'const', 'random', 'none' or a list of tensors, got {noise!r}")
        noise = list(noise)
        if len(noise) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} noise tensors, got {len(noise)}")
        return noise

    def _synthesize(self, latent: torch.Tensor, noise: Sequence[torch.Tensor | None | bool]) -> torch.Tensor:
        out = memory_layout(self.input(latent))
        out = self.conv1(out, latent[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv_up, conv, noise1, noise2, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2],
                                                         noise[2::2], self.to_rgbs, strict=True):
            out = conv_up(out, latent[:, i], noise=noise1)
            out = conv(out, latent[:, i + 1], noise=noise2)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip.contiguous()

    def synthesis(self, wplus: torch.Tensor, noise="const", precision: str = "fp32") -> torch.Tensor:
        """Synthesis network: W+ codes → image.

        Parameters
        ----------
        wplus : (B, L, D) tensor
            One style vector per layer input (L = ``n_latent``).
        noise : "const", "random", "none" or list of ``num_layers`` tensors (B or 1, 1, r, r)
            ``"const"`` uses the stored ``noises.noise_i`` buffers (upstream ``randomize_noise=False``),
            ``"random"`` draws fresh N(0, 1) noise, ``"none"`` adds none (for a generator without noise inputs, whose
            strengths are zero: the same images as ``"const"``).
        precision : {"fp32", "tf32", "bf16"}
            See :func:`precision_context`.

        Returns
        -------
        (B, out_channels, size, size) float32 tensor, roughly in [−1, 1] (not clamped).
        """
        if wplus.ndim != 3 or wplus.shape[1] != self.n_latent or wplus.shape[2] != self.style_dim:
            raise ValueError(f"wplus must be (B, {self.n_latent}, {self.style_dim}), got {tuple(wplus.shape)}")
        with precision_context(precision, wplus.device):
            image = self._synthesize(wplus, self._noise_list(noise))
        return image.float()

    def forward(self, styles, input_is_latent: bool = False, truncation: float = 1, truncation_latent=None,
                inject_index: int | None = None, randomize_noise: bool = True, return_latents: bool = False,
                noise: Sequence[torch.Tensor] | None = None):
        """Upstream ``Generator.forward``: mapping (unless ``input_is_latent``), truncation, style mixing, synthesis.

        Parameters
        ----------
        styles : list of (B, D) or (B, L, D) tensors (a single tensor is accepted as a one-element list)
            z codes, or w / W+ codes when ``input_is_latent``. With two entries, latent rows ``[0, inject_index)``
            come from the first and ``[inject_index, L)`` from the second (random index when None).
        truncation : float
            ψ; when < 1 every style becomes ``truncation_latent + ψ (style − truncation_latent)``.
        truncation_latent : (1, D) tensor
        randomize_noise : bool
            Fresh noise when True, the stored ``noises`` buffers when False (ignored if ``noise`` is given).
        return_latents : bool

        Returns
        -------
        (image (B, out_channels, size, size), latent (B, L, D) or None)
        """
        if isinstance(styles, torch.Tensor):
            styles = [styles]
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            noise = self._noise_list("random" if randomize_noise else "const")
        if truncation < 1:
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) < 2:
            latent = styles[0] if styles[0].ndim >= 3 else styles[0].unsqueeze(1).repeat(1, self.n_latent, 1)
        else:
            if inject_index is None:
                inject_index = random.randint(1, self.n_latent - 1)
            latent = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
            latent2 = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
            latent = torch.cat([latent, latent2], 1)
        image = self._synthesize(latent, noise)
        return (image, latent) if return_latents else (image, None)


# ------------------------------------------------------------------------------------------------ checkpoints
def infer_generator_config(state_dict: dict) -> dict:
    """Generator hyper-parameters read from a rosinality-layout state_dict's keys and shapes.

    ``size`` from the number of ``to_rgbs.N`` blocks (size = 2^(n + 2)), ``style_dim`` and ``z_dim`` from
    ``style.1.weight`` (style_dim, z_dim),
    ``n_mlp`` from the count of ``style.N.weight`` keys, the width at 4 px from ``input.input`` and at 2^i px from
    the non-upsampling conv ``convs.{2(i − 3) + 1}`` (its weight (1, out, in, 3, 3) must be square, and the
    upsampling conv before it must lead from the previous width), ``out_channels`` from ``to_rgb1.bias``.
    ``channel_multiplier`` is the width at 64 px / 256 when that divides (2, the FFHQ value, otherwise and below
    64 px, where it has no effect); widths that differ from :func:`default_channels` of it are ``channels``.

    Returns
    -------
    dict(size=int, style_dim=int, n_mlp=int, channel_multiplier=int[, channels={res: width}][, out_channels=int]
         [, z_dim=int])
        ``channels`` (only the widths that differ from upstream's table), ``out_channels`` and ``z_dim`` (a
        non-square first mapping layer) appear only when they are not the defaults, so an upstream layout gives
        exactly the four upstream keys.

    Raises
    ------
    ValueError
        Naming the key when the layout is missing or inconsistent.
    """
    def shape(key):
        if key not in state_dict:
            raise ValueError(f"not a StyleGAN2 generator state_dict: missing key {key!r}")
        return tuple(state_dict[key].shape)

    mlp = sorted(int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
    if not mlp:
        raise ValueError("not a StyleGAN2 generator state_dict: no 'style.N.weight' (mapping) keys")
    if mlp != list(range(1, len(mlp) + 1)):
        raise ValueError(f"mapping layers must be style.1 ... style.{len(mlp)}, found indices {mlp}")
    w = shape("style.1.weight")
    if len(w) != 2:
        raise ValueError(f"style.1.weight must be a matrix (style_dim, z_dim), got shape {w}")
    style_dim, z_dim = w

    rgbs = {int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"to_rgbs\.(\d+)\..*", k))}
    convs = {int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"convs\.(\d+)\..*", k))}
    n = len(rgbs)
    if rgbs != set(range(n)):
        raise ValueError(f"to_rgbs indices must be 0..{n - 1}, found {sorted(rgbs)}")
    if convs != set(range(2 * n)):
        raise ValueError(f"expected convs.0..convs.{2 * n - 1} for {n} to_rgbs blocks, found {sorted(convs)}")
    size = 2 ** (n + 2)
    if size > 1024:
        raise ValueError(f"{n} to_rgbs blocks give size {size}; supported sizes are 4 ... 1024")

    widths = {4: shape("input.input")[1]}
    for i in range(3, n + 3):
        res = 2**i
        up_key, key = f"convs.{2 * (i - 3)}.conv.weight", f"convs.{2 * (i - 3) + 1}.conv.weight"
        out, inp = shape(key)[1:3]
        if out != inp:
            raise ValueError(f"{key}: {out} output vs {inp} input channels at {res} px; a StyleGAN2 conv after the "
                             f"upsampling one keeps its width")
        if shape(up_key)[1:3] != (out, widths[res // 2]):
            raise ValueError(f"{up_key}: (out, in) = {shape(up_key)[1:3]} at {res} px, expected "
                             f"({out}, {widths[res // 2]}) from the widths at {res // 2} and {res} px")
        widths[res] = out

    channel_multiplier = 2
    if size >= 64 and widths[64] % 256 == 0:
        channel_multiplier = widths[64] // 256
    table = default_channels(channel_multiplier)
    config = {"size": size, "style_dim": style_dim, "n_mlp": len(mlp), "channel_multiplier": channel_multiplier}
    overrides = {res: width for res, width in widths.items() if width != table[res]}
    if overrides:
        config["channels"] = overrides
    out_channels = shape("to_rgb1.bias")[1]
    if out_channels != 3:
        config["out_channels"] = out_channels
    if z_dim != style_dim:
        config["z_dim"] = z_dim
    return config


def _generator_state_dict(ck, path) -> dict:
    """The generator weights inside a loaded checkpoint (rosinality ``g_ema``, pSp ``decoder.*``, or bare)."""
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(ck).__name__}")
    if "g_ema" in ck:
        return ck["g_ema"]
    sd = ck.get("state_dict")
    if isinstance(sd, dict):
        dec = {k[len("decoder."):]: v for k, v in sd.items() if k.startswith("decoder.")}
        return dec if dec else sd
    if any(isinstance(k, str) and k.startswith("style.") for k in ck):
        return ck
    keys = sorted(str(k) for k in ck)[:10]
    raise CheckpointError(f"{path}: no StyleGAN2 generator found (expected 'g_ema', a pSp 'state_dict' with "
                          f"'decoder.*' keys, or a bare generator state_dict); top-level keys {keys}")


def generator_from_state_dict(state_dict: dict, path) -> Generator:
    """A CPU :class:`Generator` built from :func:`infer_generator_config` of ``state_dict`` and loaded from it with
    ``strict=True``; ``latent_avg`` is left None.

    Raises
    ------
    CheckpointError
        Naming ``path``: the layout is not a StyleGAN2 generator's, or keys are missing / unexpected / mis-shaped.
    """
    try:
        config = infer_generator_config(state_dict)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from e
    gen = Generator(**config)
    load_state_dict_strict(gen, state_dict, path)  # CheckpointError naming missing/unexpected/mis-shaped keys
    return gen


def load_generator(path: str | os.PathLike, map_location="cpu") -> Generator:
    """Load a rosinality-layout StyleGAN2 generator safely (``torch.load(weights_only=True)``).

    Accepted forms:

    (a) a rosinality checkpoint (training ``{g, d, g_ema, g_optim, d_optim, args}`` or converted
        ``{g_ema, latent_avg}``): ``g_ema`` is used; ``args`` may be an ``argparse.Namespace``, the only class
        allow-listed for unpickling;
    (b) a pSp checkpoint ``{state_dict, opts, latent_avg}``: the ``decoder.*`` keys, prefix stripped;
    (c) a bare generator state_dict (or a dict whose ``state_dict`` entry is one).

    The configuration comes from :func:`infer_generator_config`; weights load with ``strict=True``
    (:func:`generator_from_state_dict`). A ``kind == "dlsgan"`` StyleGAN2 checkpoint of
    :mod:`latentedit.dlsgan.checkpoint` is form (a).

    Parameters
    ----------
    path : path-like
    map_location : passed to ``torch.load``

    Returns
    -------
    Generator in eval mode. ``latent_avg`` is set to the checkpoint's ``latent_avg`` (or ``mean_latent``) tensor
    as stored (float32): shape (D,), (1, D) or (n_latent, D) (pSp); None if the checkpoint has none.

    Raises
    ------
    CheckpointError
        Naming the file: unreadable or unsafe pickle (any other global is refused), no generator inside,
        or missing / unexpected / mis-shaped keys.
    """
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ck = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file does not exist") from None
    except Exception as e:  # refused global, truncated zip, not a torch file
        raise CheckpointError(f"{path}: cannot load checkpoint safely (weights_only=True): {e}") from e
    gen = generator_from_state_dict(_generator_state_dict(ck, path), path)
    if isinstance(map_location, (str, torch.device)):
        gen.to(map_location)
    avg = ck.get("latent_avg", ck.get("mean_latent"))
    gen.latent_avg = avg.float().to(gen.input.input.device) if isinstance(avg, torch.Tensor) else None
    return gen.eval()
