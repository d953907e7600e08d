"""Invert every faces evaluation image with pSp into W+ and write the latent store; report inversion quality on
test images (rule project_faces). Images are read, and codes written, batch by batch."""
import numpy as np

from latentedit.faces.project import encode_images, inversion_quality
from latentedit.faces.psp import load_psp
from latentedit.io.atomic import write_json
from latentedit.io.image_store import open_image_store
from latentedit.io.latent_store import create_latent_store
from latentedit.io.provenance import config_hash, file_hash
from latentedit.jobs import setup_job
from latentedit.plotting import image_grid
from latentedit.training_utils import pick_device
from latentedit.worlds import FacesJudge

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
opts = snakemake.params.faces
psp = load_psp(snakemake.input.psp, device)
with open_image_store(snakemake.input.images) as images:
    log.info("pSp %s: %d styles, latent_avg added: %s; encoding %d images %s", snakemake.input.psp, psp.n_styles,
             psp.opts["start_from_latent_avg"], len(images.images), images.images.shape[1:])
    test = np.flatnonzero(images.split == "test")[:64]  # inversion quality on (at most) 64 test images
    attrs = {"latent_space": "wplus", "world": "faces",
             "generator_checkpoint_hash": file_hash(snakemake.input.psp),
             "encoder_checkpoint_hash": file_hash(snakemake.input.psp),
             "image_store_hash": file_hash(snakemake.input.images),
             "test_labels": images.attrs.get("test_labels", "annotations"),
             "config_hash": config_hash({"images": images.attrs.get("config_hash", ""), "faces": dict(opts)})}
    with create_latent_store(snakemake.output.latents, (psp.n_styles, 512), images.ids, images.split,
                             images.attributes, images.attribute_names, attrs) as store:
        test_codes = encode_images(psp, images.images, opts["encode_batch_size"], device, sink=store.append, keep=test)
    test_images = images.images[test]
    n = len(images.ids)

judge = FacesJudge(snakemake.input.oracle, snakemake.input.arcface, device, opts["identity_crop"])
quality, recon = inversion_quality(psp, test_images, test_codes, judge, opts["encode_batch_size"], device)
log.info("test inversion: %s", quality)
write_json(snakemake.output.quality, {"psp": quality, "n_test_images": int(len(test))})
k = min(16, len(test))
image_grid([test_images[:k], recon[:k]], snakemake.output.grid, row_labels=["input", "pSp"])
log.info("wrote %d W+ codes of shape %s", n, (psp.n_styles, 512))
