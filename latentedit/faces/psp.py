"""pSp (pixel2style2pixel) FFHQ encoder with the real checkpoint layout, in plain PyTorch.

A re-implementation of ``eladrich/pixel2style2pixel`` (``models/psp.py``, ``models/encoders/psp_encoders.py``,
``models/encoders/helpers.py``) at commit 5cfff38: the ``GradualStyleEncoder(50, 'ir_se')`` feature-pyramid encoder
over an IR-SE50 backbone, and the ``pSp`` wrapper that adds ``latent_avg`` to the codes and decodes them with a
rosinality StyleGAN2 ``Generator(1024, 512, 8)`` (:mod:`latentedit.faces.stylegan2`).

Module and parameter names follow upstream exactly, so ``PSP.state_dict()`` has the keys, shapes, order and
buffers of a released ``psp_ffhq_encode.pt`` checkpoint (``encoder.*`` then ``decoder.*``; numeric
``nn.Sequential`` indices; BatchNorm ``num_batches_tracked`` as int64), and :func:`load_psp` loads one with
``strict=True``. The layout and the numbers are proven against ``../shared/compat`` (``tests/test_faces_psp.py``).

Checkpoint format (written by pSp's ``training/coach.py``): a dict ``{"state_dict": pSp.state_dict(), "opts":
vars(train_opts) + {"device", "n_styles"}, "latent_avg": Tensor}``. ``latent_avg`` is a top-level entry, not part of
the state_dict; here it is a non-persistent buffer, so it follows ``.to(device)`` but stays out of ``state_dict()``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from latentedit.io.checkpoints import CheckpointError, load_checkpoint, load_state_dict_strict

ENCODER_TYPE = "GradualStyleEncoder"
INPUT_SIZE = 256  # the encoder's input resolution (pSp's transforms resize every image to 256x256)
STYLE_DIM = 512

# (in_channel, depth, number of units) of the four IR-50 stages; the first unit of each stage has stride 2.
_IR50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))
# Outputs of body[6] (128ch, 64x64), body[20] (256ch, 32x32) and body[23] (512ch, 16x16) feed the pyramid.
_TAP_C1, _TAP_C2, _TAP_C3 = 6, 20, 23
_COARSE_END, _MIDDLE_END = 3, 7  # styles 0-2 read c3 (16x16), 3-6 read p2 (32x32), 7.. read p1 (64x64)


def n_styles_for(output_size: int) -> int:
    """Number of W+ rows of a StyleGAN2 generator of resolution ``output_size``: ``2 * log2(size) - 2`` (18 at 1024)."""
    return int(math.log2(output_size)) * 2 - 2


def ir50_units() -> list[tuple[int, int, int]]:
    """The 24 bottleneck units ``(in_channel, depth, stride)`` of IR-50 (upstream ``get_blocks(50)``, flattened)."""
    units = []
    for in_channel, depth, count in _IR50_STAGES:
        units.append((in_channel, depth, 2))
        units.extend((depth, depth, 1) for _ in range(count - 1))
    return units


class SEModule(nn.Module):
    """Squeeze-and-excitation gate: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`` with bias-free 1x1 convs.

    Parameters
    ----------
    channels : int
        C of the input (B, C, H, W); the bottleneck has ``channels // reduction`` channels.
    reduction : int
        Squeeze factor (16 in IR-SE).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, padding=0, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.adaptive_avg_pool2d(x, 1)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))
        return x * gate


class BottleneckIR(nn.Module):
    """IR (``se=False``) or IR-SE (``se=True``) bottleneck unit: ``res_layer(x) + shortcut_layer(x)``.

    ``res_layer`` = BN, conv3x3, PReLU, conv3x3 (stride), BN[, SE]. The shortcut is a strided 1x1 conv + BN when the
    channel count changes, else ``MaxPool2d(1, stride)`` (plain subsampling, no weights).

    Parameters
    ----------
    in_channel, depth : int
        Input and output channels.
    stride : int
        1 or 2; the output is (B, depth, ceil(H / stride), ceil(W / stride)).
    se : bool
        Append the squeeze-and-excitation gate (``res_layer.5``).
    """

    def __init__(self, in_channel: int, depth: int, stride: int, se: bool = True):
        super().__init__()
        # Registered before res_layer: the checkpoint lists shortcut_layer.* first.
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False),
                                                nn.BatchNorm2d(depth))
        layers = [nn.BatchNorm2d(in_channel),
                  nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
                  nn.PReLU(depth),
                  nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
                  nn.BatchNorm2d(depth)]
        if se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut_layer(x)
        return self.res_layer(x) + shortcut


class EqualLinear(nn.Module):
    """StyleGAN2 equalized-lr linear layer without activation: ``x @ (W / sqrt(in) * lr_mul).T + b * lr_mul``.

    Parameters
    ----------
    in_dim, out_dim : int
        Maps (B, in_dim) to (B, out_dim); ``weight`` is stored unscaled as (out_dim, in_dim).
    lr_mul : float
        Learning-rate multiplier (1 in pSp's style blocks).
    """

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class GradualStyleBlock(nn.Module):
    """Map-to-style head: ``log2(spatial)`` stride-2 conv3x3 + LeakyReLU(0.01) down to 1x1, then an EqualLinear.

    Parameters
    ----------
    in_c, out_c : int
        Channels of the input map (B, in_c, spatial, spatial) and of the style vector (B, out_c).
    spatial : int
        Side of the input map (16, 32 or 64); it must be reduced to exactly 1x1 by the convs.
    """

    def __init__(self, in_c: int, out_c: int, spatial: int):
        super().__init__()
        self.out_c = out_c
        self.spatial = spatial
        num_pools = int(math.log2(spatial))
        layers: list[nn.Module] = [nn.Conv2d(in_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(num_pools - 1):
            layers += [nn.Conv2d(out_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        return self.linear(x.reshape(x.shape[0], self.out_c))


class GradualStyleEncoder(nn.Module):
    """pSp's ``GradualStyleEncoder``: IR-SE50 backbone + feature pyramid + one style head per W+ row.

    Parameters
    ----------
    num_layers : int
        Backbone depth; only 50 is supported (upstream's fixed taps body[6]/[20]/[23] only fit IR-50).
    mode : {"ir_se", "ir"}
        Bottleneck unit with or without squeeze-and-excitation ("ir_se" for the FFHQ encoder).
    n_styles : int
        W+ rows produced (18 for a 1024 generator); rows 0-2 come from the 16x16 map, 3-6 from 32x32, 7+ from 64x64.
    input_nc : int
        Input channels (3 for RGB).

    Notes
    -----
    The state_dict matches the ``encoder.*`` part of a pSp checkpoint key for key (621 entries for 18 styles).
    """

    def __init__(self, num_layers: int = 50, mode: str = "ir_se", n_styles: int = 18, input_nc: int = 3):
        super().__init__()
        if num_layers != 50:
            raise ValueError(f"GradualStyleEncoder: num_layers={num_layers} is not supported (only 50)")
        if mode not in ("ir", "ir_se"):
            raise ValueError(f"GradualStyleEncoder: mode must be 'ir' or 'ir_se', got {mode!r}")
        self.n_styles = n_styles
        self.input_nc = input_nc
        self.input_layer = nn.Sequential(nn.Conv2d(input_nc, 64, (3, 3), 1, 1, bias=False),
                                         nn.BatchNorm2d(64),
                                         nn.PReLU(64))
        self.body = nn.Sequential(*[BottleneckIR(i, d, s, se=mode == "ir_se") for i, d, s in ir50_units()])
        spatial = [16 if i < _COARSE_END else 32 if i < _MIDDLE_END else 64 for i in range(n_styles)]
        self.styles = nn.ModuleList(GradualStyleBlock(512, STYLE_DIM, s) for s in spatial)
        self.latlayer1 = nn.Conv2d(256, 512, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(128, 512, kernel_size=1, stride=1, padding=0)

    @staticmethod
    def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Encode images to W+ offsets.

        Parameters
        ----------
        x : Tensor, (B, input_nc, 256, 256)
            Images in [-1, 1] (pSp's Normalize(0.5, 0.5) range), exactly 256x256.
        return_features : bool
            Also return the pyramid taps (debug aid, as stored in ``psp_golden.npz``).

        Returns
        -------
        codes : Tensor, (B, n_styles, 512)
            The encoder output, *without* ``latent_avg``.
        features : dict, only when ``return_features``
            ``c1`` (B, 128, 64, 64) = body[6], ``c2`` (B, 256, 32, 32) = body[20], ``c3`` (B, 512, 16, 16) = body[23].
        """
        if x.ndim != 4 or x.shape[1] != self.input_nc or tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"GradualStyleEncoder expects (B, {self.input_nc}, {INPUT_SIZE}, {INPUT_SIZE}) images, "
                             f"got {tuple(x.shape)} (PSP.encode resizes for you)")
        x = self.input_layer(x)
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i == _TAP_C1:
                c1 = x
            elif i == _TAP_C2:
                c2 = x
            elif i == _TAP_C3:
                c3 = x
        latents = [self.styles[j](c3) for j in range(min(_COARSE_END, self.n_styles))]
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        latents += [self.styles[j](p2) for j in range(_COARSE_END, min(_MIDDLE_END, self.n_styles))]
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        latents += [self.styles[j](p1) for j in range(_MIDDLE_END, self.n_styles)]
        codes = torch.stack(latents, dim=1)
        if return_features:
            return codes, {"c1": c1, "c2": c2, "c3": c3}
        return codes


def normalize_opts(opts: Mapping) -> dict:
    """A copy of saved pSp ``opts`` with the fields the model reads checked and defaulted.

    Missing ``output_size`` / ``learn_in_w`` (checkpoints released before 2021-04-23) default to 1024 / False, as
    pSp's inference script does; ``start_from_latent_avg`` and ``input_nc`` default to their training defaults
    (False, 3). ``n_styles`` is recomputed from ``output_size`` (pSp's constructor overwrites it too).

    Raises
    ------
    ValueError
        ``encoder_type`` is not ``GradualStyleEncoder`` (the backbone-into-W/W+ encoders are not implemented), or
        ``output_size`` is not a power of two.
    """
    out = dict(opts)
    encoder_type = out.get("encoder_type")
    if encoder_type != ENCODER_TYPE:
        raise ValueError(f"unsupported pSp encoder_type {encoder_type!r}: only {ENCODER_TYPE!r} is implemented")
    out.setdefault("output_size", 1024)
    out.setdefault("learn_in_w", False)
    out.setdefault("start_from_latent_avg", False)
    out.setdefault("input_nc", 3)
    size = int(out["output_size"])
    if size < 4 or size & (size - 1):
        raise ValueError(f"pSp output_size must be a power of two >= 4, got {out['output_size']!r}")
    out["n_styles"] = n_styles_for(size)
    return out


def _decoder_class():
    from latentedit.faces.stylegan2 import Generator  # written alongside; imported late so the encoder stands alone

    return Generator


class PSP(nn.Module):
    """pSp: ``GradualStyleEncoder`` + StyleGAN2 decoder + ``latent_avg``, with upstream's forward.

    Parameters
    ----------
    opts : Mapping
        Saved pSp options (a plain dict in real checkpoints); see :func:`normalize_opts`. Read: ``encoder_type``,
        ``output_size``, ``input_nc``, ``start_from_latent_avg``, ``learn_in_w``.
    init_weights : bool
        False leaves the encoder's weights uninitialised (for :func:`load_psp`, which overwrites all of them).

    Attributes
    ----------
    encoder : GradualStyleEncoder
    decoder : latentedit.faces.stylegan2.Generator
        ``Generator(output_size, 512, 8, channel_multiplier=2)``.
    face_pool : nn.AdaptiveAvgPool2d
        To (256, 256) (exact 4x4 average pooling of a 1024 image).
    latent_avg : Tensor (n_styles, 512) or None
        Non-persistent buffer (not in ``state_dict()``): the W+ centre added to the codes when
        ``opts["start_from_latent_avg"]``; set it with :meth:`set_latent_avg`.
    opts : dict
    """

    def __init__(self, opts: Mapping, init_weights: bool = True):
        super().__init__()
        self.opts = normalize_opts(opts)
        self.n_styles = self.opts["n_styles"]
        encoder_args = (50, "ir_se", self.n_styles, int(self.opts["input_nc"]))
        if init_weights:
            self.encoder = GradualStyleEncoder(*encoder_args)
        else:  # about to be overwritten by a checkpoint: skip the ~4 s random init of its 267M weights
            with torch.device("meta"):
                encoder = GradualStyleEncoder(*encoder_args)
            self.encoder = encoder.to_empty(device="cpu")
        self.decoder = _decoder_class()(int(self.opts["output_size"]), STYLE_DIM, 8, channel_multiplier=2)
        self.face_pool = nn.AdaptiveAvgPool2d((256, 256))
        self.register_buffer("latent_avg", None, persistent=False)

    def set_latent_avg(self, latent_avg: torch.Tensor | None) -> None:
        """Store a checkpoint's ``latent_avg`` as (n_styles, 512).

        Accepted shapes (keys json notes): (n_styles, 512) as saved for FFHQ encode (``learn_in_w=False``; real
        checkpoints hold n_styles identical rows), (1, 512) (``learn_in_w=True``) and (512,) (estimated by
        ``mean_latent``). The last two are one W vector; upstream adds it to every row by broadcasting, which is
        what repeating it to (n_styles, 512) does here.
        """
        if latent_avg is None:
            self.latent_avg = None
            return
        shape = tuple(latent_avg.shape)
        if shape == (self.n_styles, STYLE_DIM):
            value = latent_avg
        elif shape in ((1, STYLE_DIM), (STYLE_DIM,)):
            value = latent_avg.reshape(1, STYLE_DIM).repeat(self.n_styles, 1)
        else:
            raise ValueError(f"latent_avg has shape {list(shape)}; expected [{self.n_styles}, {STYLE_DIM}], "
                             f"[1, {STYLE_DIM}] or [{STYLE_DIM}]")
        ref = next(self.encoder.parameters())
        self.latent_avg = value.detach().to(device=ref.device, dtype=ref.dtype).clone()

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, input_nc, S, S), any square S → the encoder input (B, input_nc, 256, 256).

        pSp's data transforms resize the PIL image to 256x256 (PIL bilinear) before ``ToTensor`` and
        ``Normalize(0.5, 0.5)``. For a float tensor already in [-1, 1] the same resize is
        ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)``: half-pixel centres like PIL, and
        when shrinking the triangle filter is widened by the scale factor as PIL does. It agrees with PIL's resize of
        the uint8 image to within one uint8 step (PIL rounds to uint8; tested on white noise, 512 and 128 px).
        256x256 input is passed through unchanged. The result is moved to the encoder's device and dtype.
        """
        if images.ndim != 4 or images.shape[1] != self.encoder.input_nc or images.shape[2] != images.shape[3]:
            raise ValueError(f"PSP.encode expects square (B, {self.encoder.input_nc}, S, S) images in [-1, 1], "
                             f"got {tuple(images.shape)}")
        ref = next(self.encoder.parameters())
        x = images.to(device=ref.device, dtype=ref.dtype)
        if x.shape[-1] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return x

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """W+ latents of images.

        Parameters
        ----------
        images : Tensor, (B, input_nc, S, S)
            Images in [-1, 1], any square size S (resized to 256 by :meth:`prepare`).

        Returns
        -------
        Tensor, (B, n_styles, 512)
            ``encoder(x) + latent_avg`` when ``opts["start_from_latent_avg"]`` (the FFHQ encoder), else the raw codes:
            the W+ the decoder is fed with ``input_is_latent=True``.
        """
        codes = self.encoder(self.prepare(images))
        if self.opts["start_from_latent_avg"]:
            if self.latent_avg is None:
                raise RuntimeError("opts.start_from_latent_avg is set but the model has no latent_avg")
            codes = codes + self.latent_avg
        return codes

    def decode(self, wplus: torch.Tensor, resize: bool = True, randomize_noise: bool = False) -> torch.Tensor:
        """Images (B, 3, 256, 256) when ``resize`` else (B, 3, output_size, output_size) of W+ (B, n_styles, 512)."""
        images, _ = self.decoder([wplus], input_is_latent=True, randomize_noise=randomize_noise)
        return self.face_pool(images) if resize else images

    def forward(self, x: torch.Tensor, resize: bool = True, randomize_noise: bool = False,
                return_latents: bool = False):
        """Upstream ``pSp.forward``: ``decoder([encode(x)], input_is_latent=True)``, then ``face_pool`` if ``resize``.

        Parameters
        ----------
        x : Tensor, (B, input_nc, S, S)
            Images in [-1, 1]; S = 256 is what upstream accepts, other square sizes are resized first.
        resize : bool
            Pool the generator output to 256x256.
        randomize_noise : bool
            Fresh noise per call (upstream default True); False uses the fixed ``noises.noise_i`` buffers, as
            pSp's inference script does.
        return_latents : bool
            Also return the W+ fed to the decoder.

        Returns
        -------
        images : Tensor, (B, 3, 256, 256) or (B, 3, output_size, output_size)
        latents : Tensor, (B, n_styles, 512), only when ``return_latents``
        """
        codes = self.encode(x)
        images, latents = self.decoder([codes], input_is_latent=True, randomize_noise=randomize_noise,
                                       return_latents=return_latents)
        if resize:
            images = self.face_pool(images)
        return (images, latents) if return_latents else images


def load_psp(path: str | os.PathLike, device: str | torch.device = "cpu") -> PSP:
    """Load a pSp checkpoint (e.g. the released ``psp_ffhq_encode.pt``) into a :class:`PSP` in eval mode.

    The file is read with ``torch.load(map_location="cpu", weights_only=True)``: a pickle that would execute code
    is refused. Real pSp checkpoints save ``opts`` as a plain dict, so nothing beyond tensors and plain Python values
    is allow-listed. The saved ``opts["device"]`` (``"cuda:0"`` in released checkpoints) is replaced by ``device``.
    ``state_dict`` must match ``encoder.*`` + ``decoder.*`` exactly (``strict=True``).

    Parameters
    ----------
    path : path-like
    device : str or torch.device
        Where the model lives (``"cpu"`` always works).

    Returns
    -------
    PSP
        With ``opts["device"] = str(device)`` and ``latent_avg`` (n_styles, 512), or None when the checkpoint has
        none and ``start_from_latent_avg`` is off.

    Raises
    ------
    CheckpointError
        Unreadable or unsafe file, not a pSp checkpoint dict, unsupported ``encoder_type`` / opts, missing,
        unexpected or mis-shaped keys (named), or a missing / malformed ``latent_avg``.
    """
    ck = load_checkpoint(path)
    is_psp = isinstance(ck, dict) and isinstance(ck.get("state_dict"), Mapping) and isinstance(ck.get("opts"), Mapping)
    if not is_psp:
        found = sorted(map(str, ck)) if isinstance(ck, dict) else type(ck).__name__
        raise CheckpointError(f"{path}: not a pSp checkpoint (expected a dict with 'state_dict' and 'opts' dicts, "
                              f"found {found})")
    try:
        opts = normalize_opts(ck["opts"])
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    opts["device"] = str(torch.device(device))
    latent_avg = ck.get("latent_avg")
    if opts["start_from_latent_avg"] and latent_avg is None:
        raise CheckpointError(f"{path}: opts.start_from_latent_avg is set but the checkpoint has no 'latent_avg'")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(f"{path}: 'latent_avg' is a {type(latent_avg).__name__}, not a tensor")
    model = PSP(opts, init_weights=False)
    load_state_dict_strict(model, dict(ck["state_dict"]), path)
    try:
        model.set_latent_avg(latent_avg)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    del ck
    return model.to(device).eval()
