"""Build the CelebA-HQ image store from the user's images and attribute file (rule celebahq_images)."""
from pathlib import Path

import numpy as np

from latentedit.data.celebahq import list_images, load_images, match_rows, parse_attribute_file, split_assignment
from latentedit.io.image_store import ImageStore, write_image_store
from latentedit.io.provenance import config_hash
from latentedit.plotting import image_grid
from latentedit.training_utils import setup_logging

log = setup_logging(snakemake.log[0])
opts = dict(snakemake.params.faces)
folder = opts["celebahq_images"]
files, names, labels = parse_attribute_file(opts["celebahq_attributes"])
rows = match_rows(folder, files, require_all=False)
log.info("%s: %d rows; %d have an image in %s", opts["celebahq_attributes"], len(files), len(rows), folder)
if opts["max_images"] is not None and len(rows) > opts["max_images"]:
    rows = rows[:opts["max_images"]]  # the first ones in file order: CelebA-HQ's own numbering
paths = [Path(folder) / files[r] for r in rows]
images = load_images(paths, opts["image_size"], desc="CelebA-HQ")
store = ImageStore(images=images, attributes=labels[rows], attribute_names=list(names),
                   split=split_assignment(len(rows), tuple(opts["split_fractions"]), opts["seed"]),
                   ids=np.array([files[r] for r in rows]),
                   attrs={"world": "faces", "source": "celebahq", "config_hash": config_hash(opts)})
write_image_store(snakemake.output.images, store)
image_grid([images[i * 8:(i + 1) * 8] for i in range(min(4, len(images) // 8))], snakemake.output.preview)
log.info("wrote %d images %s (train/val/test %s); label rates %s", len(images), images.shape[1:],
         [int((store.split == s).sum()) for s in ("train", "val", "test")],
         dict(zip(names, np.round(store.attributes.mean(0), 3).tolist())))
