"""Project every image into the latent store and report inversion quality before/after refinement (rule project)."""
import numpy as np
import torch

from latentedit.dlsgan.checkpoint import load_dlsgan, load_encoder
from latentedit.io.atomic import write_json
from latentedit.io.image_store import read_image_store
from latentedit.io.latent_store import LatentStore, write_latent_store
from latentedit.io.provenance import config_hash, file_hash
from latentedit.oracles.digits_oracle import load_oracle
from latentedit.imaging import to_uint8
from latentedit.plotting import image_grid
from latentedit.projection.project import inversion_quality, project_images
from latentedit.training_utils import pick_device, setup_logging

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = pick_device(snakemake.params.device)
g, d, s, _ = load_dlsgan(snakemake.input.checkpoint, device)
encoder = load_encoder(snakemake.input.encoder, device)
oracle = load_oracle(snakemake.input.oracle, device)
images = read_image_store(snakemake.input.images)
test = images.select("test")

quality, recs = {}, {}
for name, enc in [("before_refinement", d), ("after_refinement", encoder)]:
    quality[name], recs[name] = inversion_quality(g, enc, s, test.images, oracle, device)
    log.info("test inversion %s: %s", name, quality[name])
quality["n_test_images"] = int(len(test.images))
write_json(snakemake.output.quality, quality)
k = 16
image_grid([test.images[:k], to_uint8(recs["before_refinement"][:k]), to_uint8(recs["after_refinement"][:k])],
           snakemake.output.grid, row_labels=["input", "GAN encoder", "refined"])

latents = project_images(encoder, s, images.images, device)
write_latent_store(snakemake.output.latents, LatentStore(
    latents=latents, ids=images.ids, split=images.split, attributes=images.attributes,
    attribute_names=images.attribute_names,
    attrs={"latent_space": "dlsgan_scaled_z", "world": "digits",
           "generator_checkpoint_hash": file_hash(snakemake.input.checkpoint),
           "encoder_checkpoint_hash": file_hash(snakemake.input.encoder),
           "image_store_hash": file_hash(snakemake.input.images),
           "config_hash": config_hash({"digits": images.attrs.get("config_hash", ""),
                                       "projection": dict(snakemake.params.projection)})},
))
log.info("wrote %d latents of shape %s; latent std per dim: mean %.3f", len(latents), latents.shape[1:],
         float(np.std(latents, axis=0).mean()))
