"""Project the images into the latent store (codes of projection.space; every image, or a subset of the train split
with projection.max_train_images) and report the inversion quality of each stage — GAN encoder, refined encoder,
per-image optimisation — on the test images (rule project)."""
import json
from dataclasses import asdict

import numpy as np

from latentedit.dlsgan.checkpoint import load_dlsgan
from latentedit.imaging import to_uint8
from latentedit.io.atomic import write_json
from latentedit.io.image_store import read_image_store
from latentedit.io.latent_store import LatentStore, write_latent_store
from latentedit.io.provenance import config_hash, file_hash
from latentedit.jobs import setup_job
from latentedit.oracles.digits_oracle import load_oracle
from latentedit.plotting import image_grid
from latentedit.projection.project import STAGE_LABELS, projected_rows, projection_stages
from latentedit.projection.refine import RefineConfig
from latentedit.projection.wplus import load_code_encoder
from latentedit.training_utils import pick_device

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
cfg = RefineConfig(**snakemake.params.projection)
g, d, s, _ = load_dlsgan(snakemake.input.checkpoint, device)
encoder, space = load_code_encoder(snakemake.input.encoder, device)
if space != cfg.space:
    raise ValueError(f"{snakemake.input.encoder}: the encoder gives {space} codes, projection.space is {cfg.space}")
oracle = load_oracle(snakemake.input.oracle, device)
images = read_image_store(snakemake.input.images)
rows = projected_rows(images.split, cfg.max_train_images, cfg.seed)
log.info("projecting %d of %d images (%d of %d train)", rows.sum(), len(rows), (rows & (images.split == "train")).sum(),
         (images.split == "train").sum())

latents, quality, recs = projection_stages(g, d, encoder, s, images.images[rows], images.split[rows] == "test", oracle,
                                           device, cfg.space, **cfg.optimization())
quality["n_codes"] = {split: int((images.split[rows] == split).sum()) for split in ("train", "val", "test")}
for name in recs:
    log.info("test inversion %s: %s", name, quality[name])
write_json(snakemake.output.quality, quality)
k = 16
image_grid([images.images[images.split == "test"][:k], *(to_uint8(rec[:k]) for rec in recs.values())],
           snakemake.output.grid, row_labels=["input", *(STAGE_LABELS[name] for name in recs)])

write_latent_store(snakemake.output.latents, LatentStore(
    latents=latents, ids=images.ids[rows], split=images.split[rows], attributes=images.attributes[rows],
    attribute_names=images.attribute_names,
    attrs={"latent_space": cfg.space, "world": "digits", "projection_options": json.dumps(asdict(cfg), sort_keys=True),
           "generator_checkpoint_hash": file_hash(snakemake.input.checkpoint),
           "encoder_checkpoint_hash": file_hash(snakemake.input.encoder),
           "image_store_hash": file_hash(snakemake.input.images),
           "config_hash": config_hash({"digits": images.attrs.get("config_hash", ""),
                                       "projection": dict(snakemake.params.projection)})},
))
log.info("wrote %d %s latents of shape %s; latent std per entry: mean %.3f", len(latents), cfg.space,
         latents.shape[1:], float(np.std(latents, axis=0).mean()))
