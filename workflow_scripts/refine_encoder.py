"""Refine the DLSGAN encoder on real training images (rule refine_encoder)."""
from dataclasses import asdict

import pandas as pd
import torch

from latentedit.dlsgan.checkpoint import load_dlsgan, save_encoder
from latentedit.io.atomic import atomic_path
from latentedit.io.image_store import read_image_store
from latentedit.io.provenance import file_hash
from latentedit.plotting import plot_curves
from latentedit.projection.refine import RefineConfig, refine_encoder
from latentedit.training_utils import pick_device, setup_logging

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = pick_device(snakemake.params.device)
cfg = RefineConfig(**snakemake.params.projection)
g, d, s, ck = load_dlsgan(snakemake.input.checkpoint, device)
store = read_image_store(snakemake.input.images)
encoder, history = refine_encoder(g, d, s, ck["options"]["distribution"], store.select("train").images,
                                  store.select("val").images, cfg, device)
save_encoder(snakemake.output.encoder, encoder.cpu(), file_hash(snakemake.input.checkpoint),
             [{**row, "options": asdict(cfg)} for row in history])
frame = pd.DataFrame(history)
with atomic_path(snakemake.output.history) as tmp:
    frame.to_csv(tmp, index=False, float_format="%.6g")
plot_curves({"refine": frame}, ["train_pixel", "train_latent", "val_psnr", "val_ssim"], snakemake.output.curves,
            title="Encoder refinement (epoch -1 = GAN encoder head)")
