"""The faces evaluation image store (rule faces_eval_images): CelebA-HQ train/val with their annotations (a view of
celebahq.h5, not a copy), and as test the first N FFHQ images labelled by the attribute classifiers (or, without
FFHQ, CelebA-HQ's test split)."""
from pathlib import Path

from latentedit.data.celebahq import list_images, write_faces_eval_store
from latentedit.faces.attributes import load_attribute_classifier
from latentedit.io.image_store import open_image_store
from latentedit.io.provenance import config_hash, file_hash
from latentedit.jobs import setup_job
from latentedit.training_utils import pick_device

log = setup_job(snakemake.log[0], timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
opts = dict(snakemake.params.faces)
with open_image_store(snakemake.input.celebahq) as celebahq:
    source_attrs = {k: v for k, v in celebahq.attrs.items() if k not in ("format", "format_version")}
attrs = {**source_attrs, "world": "faces", "celebahq_hash": file_hash(snakemake.input.celebahq),
         "config_hash": config_hash({"celebahq": source_attrs.get("config_hash", ""), "faces": opts})}
if opts["ffhq_images"] is None:
    info = write_faces_eval_store(snakemake.output.images, snakemake.input.celebahq, None, None, None,
                                  {**attrs, "test_labels": "celebahq annotations"})
    log.info("no FFHQ folder configured: the test split is CelebA-HQ's (%d images)", info["n"]["test"])
else:
    folder = Path(opts["ffhq_images"])
    paths = list_images(folder)[:opts["ffhq_n_images"]]
    if len(paths) < opts["ffhq_n_images"]:
        log.warning("%s holds %d images, fewer than faces.ffhq_n_images=%d", folder, len(paths), opts["ffhq_n_images"])
    classifier = load_attribute_classifier(snakemake.input.oracle, device)
    info = write_faces_eval_store(snakemake.output.images, snakemake.input.celebahq, folder, paths, classifier,
                                  {**attrs, "test_labels": "attribute classifier predictions (p > 0.5) on FFHQ"})
    log.info("test split: %d FFHQ images from %s; predicted label rates %s", info["n"]["test"], folder,
             info["ffhq_label_rates"])
log.info("wrote %s: train/val/test %s (train/val a view of %s)", snakemake.output.images, list(info["n"].values()),
         snakemake.input.celebahq)
