"""The rosinality-compatible StyleGAN2 generator: state_dict layout and numbers against ../shared/compat's golden
vectors (recipe-filled weights, upstream outputs), safe checkpoint loading, and the precision modes."""

import argparse
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latentedit.faces.recipe import fill_module
from latentedit.faces.stylegan2 import (
    Generator,
    ModulatedConv2d,
    default_channels,
    infer_generator_config,
    load_generator,
    make_kernel,
    memory_layout,
    precision_context,
    upfirdn2d,
)
from latentedit.io.checkpoints import CheckpointError
from tests.compat import COMPAT, require_compat

SMALL = {"size": 64, "style_dim": 64, "n_mlp": 2, "channel_multiplier": 1}
# The DLSGAN digits generator's layout (issue 13): narrow widths, one image channel.
NARROW = {"size": 32, "style_dim": 128, "n_mlp": 4, "channel_multiplier": 2,
          "channels": {4: 64, 8: 64, 16: 64, 32: 32}, "out_channels": 1}
TOL_LATENT, TOL_IMAGE, TOL_F16 = 5e-5, 1e-4, 1e-3
CROPS = {"tl": (0, 0), "tr": (0, 960), "bl": (960, 0), "br": (960, 960), "center": (480, 480)}


def maxabs(a, b) -> float:
    return (torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().max().item()


def golden(name):
    require_compat()
    with np.load(COMPAT / name) as z:
        return {k: torch.from_numpy(z[k]) for k in z.files}


@pytest.fixture(scope="module")
def small():
    """The manifest's small Generator(64, 64, 2, 1), filled by the recipe (prefix "")."""
    return fill_module(Generator(**SMALL)).eval()


@pytest.fixture(scope="module")
def big():
    """Generator(1024, 512, 8, 2) filled by the recipe; built once per module (~1024² synthesis is the slow part)."""
    return fill_module(Generator(1024, 512, 8, 2)).eval()


@pytest.fixture(scope="module")
def big_image(big):
    g = golden("stylegan2_1024_golden.npz")
    with torch.no_grad():
        return big.synthesis(g["synth_wplus"], noise="const")


# ----------------------------------------------------------------------------------------------------- layout
def test_state_dict_layout_matches_ffhq_g_ema(big):
    require_compat()
    ref = json.loads((COMPAT / "stylegan2_1024_keys.json").read_text())
    sd = big.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(k, v) for k, v in ref["keys"].items()]
    assert [k for k, _ in big.named_parameters()] == ref["parameters"]
    assert sorted(k for k, _ in big.named_buffers()) == sorted(ref["buffers"])
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert (big.n_latent, big.num_layers, big.size, big.style_dim) == (18, 17, 1024, 512)
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    fir = torch.outer(k, k) / 16
    for key in ref["buffers"]:
        if key.endswith("kernel"):
            assert torch.equal(sd[key], fir), key


@pytest.mark.parametrize("config", [
    {"size": 1024, "style_dim": 512, "n_mlp": 8, "channel_multiplier": 2},
    {"size": 256, "style_dim": 512, "n_mlp": 8, "channel_multiplier": 1},
    SMALL,
    {"size": 32, "style_dim": 128, "n_mlp": 4, "channel_multiplier": 2},
    NARROW,
    {**SMALL, "channels": {32: 128}},  # one width overridden: only it is reported
    {**SMALL, "channel_multiplier": 2, "channels": {64: 96}, "out_channels": 2},  # 96 at 64 px: no multiple of 256
])
def test_infer_generator_config(config):
    with torch.device("meta"):
        sd = Generator(**config).state_dict()
    assert infer_generator_config(sd) == config


def test_infer_generator_config_rejects_inconsistent_layouts():
    with torch.device("meta"):
        sd = Generator(**SMALL).state_dict()
    bad = dict(sd, **{"convs.5.conv.weight": torch.empty(1, 300, 512, 3, 3, device="meta")})
    with pytest.raises(ValueError, match=r"convs\.5\.conv\.weight"):
        infer_generator_config(bad)
    with pytest.raises(ValueError, match="style.N.weight"):
        infer_generator_config({k: v for k, v in sd.items() if not k.startswith("style.")})
    with pytest.raises(ValueError, match="convs"):
        infer_generator_config({k: v for k, v in sd.items() if not k.startswith("convs.7.")})
    with torch.device("meta"):
        narrow = Generator(**NARROW).state_dict()
    bad = dict(narrow, **{"convs.2.conv.weight": torch.empty(1, 64, 32, 3, 3, device="meta")})
    with pytest.raises(ValueError, match=r"convs\.2\.conv\.weight.*\(64, 64\)"):  # 16 px up-conv must read 8 px's 64
        infer_generator_config(bad)


def test_default_arguments_build_upstreams_network():
    """channels=None / out_channels=3 and the explicit upstream table give the same parameters from the same seed
    (the golden tests above check those numbers against upstream)."""
    torch.manual_seed(0)
    a = Generator(**SMALL)
    torch.manual_seed(0)
    b = Generator(**SMALL, channels={res: w for res, w in default_channels(1).items() if res <= 64}, out_channels=3)
    assert _same_weights(a, b) and a.channels == b.channels == default_channels(1)
    assert a.to_rgb1.bias.shape == (1, 3, 1, 1)


def test_channel_overrides_are_checked():
    with pytest.raises(ValueError, match="channels"):
        Generator(32, 16, 1, channels={64: 8})  # beyond the 32 px output
    with pytest.raises(ValueError, match="channels"):
        Generator(32, 16, 1, channels={12: 8})  # not a resolution
    with pytest.raises(ValueError, match="channels"):
        Generator(32, 16, 1, channels={8: 0})


def test_narrow_generator_shapes_and_loading(tmp_path):
    """The DLSGAN layout: the overridden widths and one output channel, read back by load_generator."""
    torch.manual_seed(0)
    gen = Generator(**NARROW).eval()
    sd = gen.state_dict()
    assert sd["input.input"].shape == (1, 64, 4, 4) and sd["convs.5.conv.weight"].shape == (1, 32, 32, 3, 3)
    assert sd["to_rgbs.2.conv.weight"].shape == (1, 1, 32, 1, 1) and sd["to_rgb1.bias"].shape == (1, 1, 1, 1)
    wplus = torch.randn(2, gen.n_latent, gen.style_dim)
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(gen.style_dim)}, tmp_path / "narrow.pt")
    loaded = load_generator(tmp_path / "narrow.pt")
    assert _same_weights(loaded, gen) and loaded.out_channels == 1 and loaded.channels[32] == 32
    with torch.no_grad():
        image = loaded.synthesis(wplus)
        assert image.shape == (2, 1, 32, 32) and torch.equal(image, gen.synthesis(wplus))


# ------------------------------------------------------------------------------------------- small golden
def test_small_golden_mapping_and_synthesis(small):
    g = golden("stylegan2_small_golden.npz")
    with torch.no_grad():
        w = small.mapping(g["mapping_z"])
        image = small.synthesis(g["synth_wplus"], noise="const")
        image_fwd, none = small([g["synth_wplus"]], input_is_latent=True, randomize_noise=False)
    d_w, d_img = maxabs(w, g["mapping_w"]), maxabs(image, g["synth_image"])
    print(f"small mapping_w {d_w:.3g}  synth_image {d_img:.3g}")
    assert d_w < TOL_LATENT and d_img < TOL_IMAGE
    assert none is None and torch.equal(image, image_fwd)


def test_small_golden_truncation(small):
    g = golden("stylegan2_small_golden.npz")
    with torch.no_grad():
        image, latent = small([g["trunc_z"]], truncation=0.7, truncation_latent=g["trunc_mean_latent"],
                              randomize_noise=False, return_latents=True)
    d_img, d_lat = maxabs(image, g["trunc_image"]), maxabs(latent, g["trunc_latent"])
    print(f"small trunc_image {d_img:.3g}  trunc_latent {d_lat:.3g}")
    assert d_img < TOL_IMAGE and d_lat < TOL_LATENT


def test_small_golden_style_mixing(small):
    g = golden("stylegan2_small_golden.npz")
    with torch.no_grad():
        image, latent = small([g["mix_z_a"], g["mix_z_b"]], inject_index=4, randomize_noise=False,
                              return_latents=True)
    d_img, d_lat = maxabs(image, g["mix_image"]), maxabs(latent, g["mix_latent"])
    print(f"small mix_image {d_img:.3g}  mix_latent {d_lat:.3g}")
    assert d_img < TOL_IMAGE and d_lat < TOL_LATENT


# -------------------------------------------------------------------------------------------- 1024 golden
def test_1024_golden_mapping(big):
    g = golden("stylegan2_1024_golden.npz")
    with torch.no_grad():
        d = maxabs(big.mapping(g["mapping_z"]), g["mapping_w"])
    print(f"1024 mapping_w {d:.3g}")
    assert d < TOL_LATENT


def test_1024_golden_synthesis(big_image):
    g = golden("stylegan2_1024_golden.npz")
    assert big_image.shape == (1, 3, 1024, 1024) and big_image.dtype == torch.float32
    diffs = {f"crop_{name}": maxabs(big_image[:, :, y:y + 64, x:x + 64], g[f"synth_image_crop_{name}"])
             for name, (y, x) in CROPS.items()}
    diffs["pool256"] = maxabs(F.avg_pool2d(big_image, 4), g["synth_image_pool256"])
    d16 = maxabs(big_image, g["synth_image_f16"].float())
    print("1024 " + "  ".join(f"{k} {v:.3g}" for k, v in diffs.items()) + f"  f16 {d16:.3g}")
    assert max(diffs.values()) < TOL_IMAGE, diffs
    assert d16 < TOL_F16


# -------------------------------------------------------------------------------------------- API details
def test_noise_modes_and_forward_variants(small):
    torch.manual_seed(0)
    z = torch.randn(1, small.style_dim)
    with torch.no_grad():
        w = small.mapping(z)
        wplus = w.unsqueeze(1).repeat(1, small.n_latent, 1)
        const = small.synthesis(wplus)
        assert torch.equal(const, small.synthesis(wplus, noise="const"))
        r1, r2 = small.synthesis(wplus, noise="random"), small.synthesis(wplus, noise="random")
        assert r1.shape == const.shape == (1, 3, 64, 64)
        assert not torch.equal(r1, r2) and not torch.equal(r1, const)
        noise = small.make_noise(1, torch.Generator().manual_seed(3))
        assert torch.equal(small.synthesis(wplus, noise=noise), small.synthesis(wplus, noise=noise))
        image, latent = small(z, randomize_noise=False, return_latents=True)  # a bare tensor = [tensor]
        assert torch.equal(latent, wplus) and torch.allclose(image, const, atol=1e-6)
    with pytest.raises(ValueError, match="wplus must be"):
        small.synthesis(w)
    with pytest.raises(ValueError, match="noise must be"):
        small.synthesis(wplus, noise="fixed")


def test_mean_latent_is_seeded(small):
    a, b, c = small.mean_latent(256, seed=1), small.mean_latent(256, seed=1), small.mean_latent(256, seed=2)
    assert a.shape == (1, small.style_dim) and torch.equal(a, b) and not torch.equal(a, c)


def test_gradients_flow_to_wplus(small):
    wplus = torch.zeros(1, small.n_latent, small.style_dim, requires_grad=True)
    small.synthesis(wplus).square().mean().backward()
    assert wplus.grad is not None and torch.isfinite(wplus.grad).all() and wplus.grad.abs().sum() > 0


def test_precision_modes(small):
    torch.manual_seed(1)
    with torch.no_grad():
        wplus = small.mapping(torch.randn(small.n_latent, small.style_dim)).view(1, small.n_latent, -1)
        fp32 = small.synthesis(wplus, precision="fp32")
        tf32 = small.synthesis(wplus, precision="tf32")
        bf16 = small.synthesis(wplus, precision="bf16")
    assert torch.equal(fp32, tf32)  # TF32 has no effect on CPU
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    d = maxabs(bf16, fp32)
    print(f"small bf16 vs fp32 max-abs {d:.3g} (image std {fp32.std().item():.3g})")
    assert 0 < d < 0.1  # measured 0.026 on recipe weights (image std 0.67)
    with pytest.raises(ValueError, match="precision"), precision_context("fp16", "cpu"):
        pass


# ---------------------------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def small_random():
    torch.manual_seed(0)
    return Generator(**SMALL).eval()


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_rosinality_training_checkpoint(tmp_path, small_random):
    sd = small_random.state_dict()
    param = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([param], lr=0.002, betas=(0.0, 0.99))
    param.sum().backward()
    opt.step()
    args = argparse.Namespace(size=64, latent=64, n_mlp=2, channel_multiplier=1, ckpt=None, lr=0.002, iter=800000,
                              distributed=False, path="lmdb/ffhq")
    ck = {"g": {k: v + 1 for k, v in sd.items()}, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)},
          "g_ema": sd, "g_optim": opt.state_dict(), "d_optim": opt.state_dict(), "args": args}
    path = tmp_path / "rosinality.pt"
    torch.save(ck, path)
    gen = load_generator(path)
    assert isinstance(gen, Generator) and not gen.training
    assert (gen.size, gen.style_dim, gen.n_mlp, gen.channel_multiplier) == (64, 64, 2, 1)
    assert _same_weights(gen, small_random) and gen.latent_avg is None


def test_load_psp_checkpoint(tmp_path, small_random):
    sd = {"encoder.input_layer.0.weight": torch.randn(64, 3, 3, 3)}
    sd.update({f"decoder.{k}": v for k, v in small_random.state_dict().items()})
    latent_avg = torch.randn(small_random.n_latent, small_random.style_dim)
    path = tmp_path / "psp.pt"
    torch.save({"state_dict": sd, "opts": {"output_size": 64, "learn_in_w": False, "device": "cuda:0"},
                "latent_avg": latent_avg}, path)
    gen = load_generator(path)
    assert _same_weights(gen, small_random) and not gen.training
    assert torch.equal(gen.latent_avg, latent_avg)


def test_load_bare_state_dict(tmp_path, small_random):
    path = tmp_path / "bare.pt"
    torch.save(small_random.state_dict(), path)
    gen = load_generator(path)
    assert _same_weights(gen, small_random) and not gen.training
    wplus = torch.randn(1, gen.n_latent, gen.style_dim)
    with torch.no_grad():
        assert torch.equal(gen.synthesis(wplus), small_random.synthesis(wplus))


def test_load_reports_missing_and_misshaped_keys(tmp_path, small_random):
    sd = dict(small_random.state_dict())
    missing = {k: v for k, v in sd.items() if k != "convs.3.noise.weight"}
    torch.save({"g_ema": missing}, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing\.pt.*convs\.3\.noise\.weight"):
        load_generator(tmp_path / "missing.pt")
    torch.save(dict(sd, **{"to_rgbs.1.bias": torch.zeros(1, 3, 2, 2)}), tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"shape\.pt.*to_rgbs\.1\.bias"):
        load_generator(tmp_path / "shape.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no StyleGAN2 generator"):
        load_generator(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "absent.pt")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_load_refuses_code_executing_pickle(tmp_path, small_random):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": small_random.state_dict(), "args": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_generator(path)
    assert not marker.exists()


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("pad", [(0, 0), (1, 1), (2, 1), (1, 2), (0, 3)])
def test_upfirdn2d_equals_zero_insertion_padding_and_filtering(up, pad):
    """upfirdn2d pads inside the convolution: bit for bit the explicit zeros, padded copy and unpadded filter."""
    torch.manual_seed(0)
    x, kernel = torch.randn(3, 5, 7, 7), make_kernel((1, 3, 3, 1)) * up**2
    z = torch.zeros(3, 5, 7 * up, 7 * up)
    z[:, :, ::up, ::up] = x
    z = F.pad(z, [pad[0], pad[1], pad[0], pad[1]])
    reference = F.conv2d(z, torch.flip(kernel, [0, 1]).view(1, 1, 4, 4).expand(5, 1, 4, 4), groups=5)
    out = upfirdn2d(x, kernel, up=up, pad=pad)
    assert out.shape == reference.shape
    assert torch.equal(out, reference)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_synthesis_runs_channels_last_on_cpu_and_returns_a_contiguous_image(precision, monkeypatch):
    """Every modulated convolution reads channels-last activations on CPU (bf16's oneDNN kernels need them)."""
    g = Generator(16, 32, 2, channel_multiplier=1).eval()
    seen, convolve = [], ModulatedConv2d.convolve  # StyledConv calls convolve itself, ToRGB through forward
    monkeypatch.setattr(ModulatedConv2d, "convolve",
                        lambda self, x, style: (seen.append(x), convolve(self, x, style))[1])
    with torch.no_grad():
        image = g.synthesis(torch.randn(2, g.n_latent, 32), precision=precision)
    n_convs = sum(isinstance(m, ModulatedConv2d) for m in g.modules())
    assert len(seen) == n_convs == 8 and all(x.is_contiguous(memory_format=torch.channels_last) for x in seen)
    assert image.is_contiguous() and image.shape == (2, 3, 16, 16)
    assert memory_layout(torch.randn(2, 4, 3, 3)).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_styled_conv_epilogue_is_upstreams_formula(upsample, demodulate):
    """StyledConv's folded epilogue = leaky_relu(conv·d + w_n·noise + b, 0.2)·√2 as upstream computes it, in value and
    in every gradient, with given, random and no noise."""
    from latentedit.faces.stylegan2 import StyledConv, fused_leaky_relu

    torch.manual_seed(0)
    layer = StyledConv(6, 5, 3, 8, upsample=upsample, demodulate=demodulate)
    with torch.no_grad():
        layer.noise.weight.fill_(0.3)
        layer.activate.bias.normal_()
    x, style = torch.randn(2, 6, 4, 4, requires_grad=True), torch.randn(2, 8)
    size = 8 if upsample else 4
    noise = torch.randn(2, 1, size, size)

    def upstream(noise_map):
        out = layer.conv(x, style)  # ModulatedConv2d.forward: demodulated (or not), blurred when upsampling
        if noise_map is not None:
            out = out + layer.noise.weight * noise_map
        return fused_leaky_relu(out, layer.activate.bias)

    for given, expected in ((noise, noise), (False, None)):
        out, ref = layer(x, style, noise=given), upstream(expected)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        grads = torch.autograd.grad(out.square().sum(), [x, layer.conv.weight, layer.activate.bias, layer.noise.weight],
                                    allow_unused=True)
        refs = torch.autograd.grad(ref.square().sum(), [x, layer.conv.weight, layer.activate.bias, layer.noise.weight],
                                   allow_unused=True)
        for g_out, g_ref in zip(grads, refs, strict=True):
            if g_ref is None:  # no noise: the strength gets no gradient either way
                assert g_out is None or not g_out.any()
            else:
                torch.testing.assert_close(g_out, g_ref, rtol=1e-4, atol=1e-5)
    torch.manual_seed(1)
    drawn = layer(x, style, noise=None)
    torch.manual_seed(1)
    reference = upstream(torch.randn(2, 1, size, size))
    torch.testing.assert_close(drawn, reference, rtol=1e-5, atol=1e-6)


def test_synthesis_without_noise_equals_zero_noise_and_differs_from_real_noise():
    """noise="none" skips the injection: bit for bit the stored maps' images when the strengths are zero (the DLSGAN
    generator), and not the same images as a generator with noise."""
    g = Generator(16, 32, 2, channel_multiplier=1).eval()
    w = torch.randn(2, g.n_latent, 32)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise.weight"):
                p.fill_(0.5)
        noisy, none = g.synthesis(w, noise="const"), g.synthesis(w, noise="none")
        assert (noisy - none).abs().max() > 1e-3
        for name, p in g.named_parameters():
            if name.endswith("noise.weight"):
                p.zero_()
        assert torch.equal(g.synthesis(w, noise="const"), g.synthesis(w, noise="none"))
    with pytest.raises(ValueError, match="'none'"):
        g.synthesis(w, noise="off")
