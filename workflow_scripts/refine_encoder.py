"""Refine the projection encoder on real training images: the DLSGAN encoder (projection.space z) or the pSp-style
W/W+ head on top of it (w, wplus) (rule refine_encoder)."""
from dataclasses import asdict

import pandas as pd
import torch

from latentedit.dlsgan.checkpoint import load_dlsgan
from latentedit.io.atomic import atomic_path
from latentedit.io.image_store import read_image_store
from latentedit.io.provenance import file_hash
from latentedit.plotting import plot_curves
from latentedit.projection.refine import RefineConfig, refine_projection_encoder
from latentedit.projection.wplus import save_code_encoder
from latentedit.training_utils import pick_device, setup_logging

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = pick_device(snakemake.params.device)
cfg = RefineConfig(**snakemake.params.projection)
g, d, s, ck = load_dlsgan(snakemake.input.checkpoint, device)
store = read_image_store(snakemake.input.images)
encoder, history = refine_projection_encoder(g, d, s, ck["options"]["distribution"], store.select("train").images,
                                             store.select("val").images, cfg, device)
save_code_encoder(snakemake.output.encoder, encoder.cpu(), file_hash(snakemake.input.checkpoint),
                  [{**row, "options": asdict(cfg)} for row in history])
frame = pd.DataFrame(history)
with atomic_path(snakemake.output.history) as tmp:
    frame.to_csv(tmp, index=False, float_format="%.6g")
columns = [c for c in ("train_pixel", "train_latent", "train_w_latent", "val_psnr", "val_ssim") if c in frame]
plot_curves({"refine": frame}, columns, snakemake.output.curves,
            title=f"Encoder refinement, {cfg.space} codes (epoch -1 = GAN encoder head)")
