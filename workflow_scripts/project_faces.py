"""Invert every faces evaluation image with pSp into W+ and write the latent store; report inversion quality on
test images (rule project_faces)."""
import numpy as np
import torch

from latentedit.faces.project import encode_images, inversion_quality
from latentedit.faces.psp import load_psp
from latentedit.io.atomic import write_json
from latentedit.io.image_store import read_image_store
from latentedit.io.latent_store import LatentStore, write_latent_store
from latentedit.io.provenance import config_hash, file_hash
from latentedit.plotting import image_grid
from latentedit.training_utils import pick_device, setup_logging
from latentedit.worlds import FacesJudge

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = pick_device(snakemake.params.device)
opts = snakemake.params.faces
psp = load_psp(snakemake.input.psp, device)
images = read_image_store(snakemake.input.images)
log.info("pSp %s: %d styles, latent_avg added: %s; encoding %d images %s", snakemake.input.psp, psp.n_styles,
         psp.opts["start_from_latent_avg"], len(images.images), images.images.shape[1:])
latents = encode_images(psp, images.images, opts["encode_batch_size"], device)

test = np.flatnonzero(images.split == "test")[:64]  # inversion quality on (at most) 64 test images
judge = FacesJudge(snakemake.input.oracle, snakemake.input.arcface, device, opts["identity_crop"])
quality, recon = inversion_quality(psp, images.images[test], latents[test], judge, opts["encode_batch_size"], device)
log.info("test inversion: %s", quality)
write_json(snakemake.output.quality, {"psp": quality, "n_test_images": int(len(test))})
k = min(16, len(test))
image_grid([images.images[test[:k]], recon[:k]], snakemake.output.grid, row_labels=["input", "pSp"])

write_latent_store(snakemake.output.latents, LatentStore(
    latents=latents, ids=images.ids, split=images.split, attributes=images.attributes,
    attribute_names=images.attribute_names,
    attrs={"latent_space": "stylegan2_wplus", "world": "faces",
           "generator_checkpoint_hash": file_hash(snakemake.input.psp),
           "encoder_checkpoint_hash": file_hash(snakemake.input.psp),
           "image_store_hash": file_hash(snakemake.input.images),
           "test_labels": images.attrs.get("test_labels", "annotations"),
           "config_hash": config_hash({"images": images.attrs.get("config_hash", ""), "faces": dict(opts)})},
))
log.info("wrote %d W+ codes of shape %s", len(latents), latents.shape[1:])
