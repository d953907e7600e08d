"""The faces evaluation image store (rule faces_eval_images): CelebA-HQ train/val with their annotations, and as
test the first N FFHQ images labelled by the attribute classifiers (or, without FFHQ, CelebA-HQ's test split)."""
from pathlib import Path

import numpy as np

from latentedit.data.celebahq import list_images, load_images
from latentedit.faces.attributes import load_attribute_classifier
from latentedit.io.image_store import ImageStore, read_image_store, write_image_store
from latentedit.io.provenance import config_hash, file_hash
from latentedit.training_utils import pick_device, setup_logging

log = setup_logging(snakemake.log[0])
device = pick_device(snakemake.params.device)
opts = dict(snakemake.params.faces)
celebahq = read_image_store(snakemake.input.celebahq)
attrs = {**celebahq.attrs, "world": "faces", "celebahq_hash": file_hash(snakemake.input.celebahq),
         "config_hash": config_hash({"celebahq": celebahq.attrs.get("config_hash", ""), "faces": opts})}
if opts["ffhq_images"] is None:
    store = ImageStore(celebahq.images, celebahq.attributes, list(celebahq.attribute_names), celebahq.split,
                       celebahq.ids, attrs={**attrs, "test_labels": "celebahq annotations"})
    log.info("no FFHQ folder configured: the test split is CelebA-HQ's (%d images)", int((store.split == "test").sum()))
else:
    folder = Path(opts["ffhq_images"])
    paths = list_images(folder)[:opts["ffhq_n_images"]]
    if len(paths) < opts["ffhq_n_images"]:
        log.warning("%s holds %d images, fewer than faces.ffhq_n_images=%d", folder, len(paths), opts["ffhq_n_images"])
    ffhq = load_images(paths, celebahq.images.shape[-1], desc="FFHQ")
    classifier = load_attribute_classifier(snakemake.input.oracle, device)
    labels = (classifier.predict_proba(ffhq) > 0.5).astype(np.uint8)  # (N, 40): the judge's reading, no annotations
    keep = celebahq.split != "test"
    store = ImageStore(
        images=np.concatenate([celebahq.images[keep], ffhq]),
        attributes=np.concatenate([celebahq.attributes[keep], labels]),
        attribute_names=list(celebahq.attribute_names),
        split=np.concatenate([celebahq.split[keep], np.full(len(ffhq), "test")]),
        ids=np.concatenate([celebahq.ids[keep], [f"ffhq/{p.relative_to(folder).as_posix()}" for p in paths]]),
        attrs={**attrs, "test_labels": "attribute classifier predictions (p > 0.5) on FFHQ"})
    log.info("test split: %d FFHQ images from %s; predicted label rates %s", len(ffhq), folder,
             dict(zip(celebahq.attribute_names, np.round(labels.mean(0), 3).tolist())))
write_image_store(snakemake.output.images, store)
log.info("wrote %d images: train/val/test %s", len(store.images),
         [int((store.split == s).sum()) for s in ("train", "val", "test")])
