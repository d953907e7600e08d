"""Build the CelebA-HQ image store from the user's images and attribute file (rule celebahq_images)."""
from latentedit.data.celebahq import match_rows, parse_attribute_file, write_celebahq_store
from latentedit.io.provenance import config_hash
from latentedit.jobs import setup_job
from latentedit.plotting import image_grid

log = setup_job(snakemake.log[0], timing=snakemake.output.timing)
opts = dict(snakemake.params.faces)
folder = opts["celebahq_images"]
files, names, labels = parse_attribute_file(opts["celebahq_attributes"])
rows = match_rows(folder, files, require_all=False)
log.info("%s: %d rows; %d have an image in %s", opts["celebahq_attributes"], len(files), len(rows), folder)
if opts["max_images"] is not None and len(rows) > opts["max_images"]:
    rows = rows[:opts["max_images"]]  # the first ones in file order: CelebA-HQ's own numbering
info = write_celebahq_store(snakemake.output.images, folder, files, labels, list(names), rows, opts["image_size"],
                            tuple(opts["split_fractions"]), opts["seed"],
                            attrs={"world": "faces", "source": "celebahq", "config_hash": config_hash(opts)})
preview = info["preview"]
image_grid([preview[i * 8:(i + 1) * 8] for i in range(min(4, len(preview) // 8))], snakemake.output.preview)
log.info("wrote %d images of %d px (train/val/test %s); label rates %s", len(rows), opts["image_size"],
         list(info["n"].values()), info["label_rates"])
