"""Build the digits world's image store (rule digits_images)."""
from latentedit.data.digits import DigitsConfig, build_digits
from latentedit.io.image_store import write_image_store
from latentedit.io.provenance import config_hash
from latentedit.jobs import setup_job
from latentedit.plotting import image_grid

log = setup_job(snakemake.log[0], timing=snakemake.output.timing)
cfg = dict(snakemake.params.digits)
store = build_digits(DigitsConfig(**{**cfg, "source_fractions": tuple(cfg["source_fractions"])}))
store.attrs["config_hash"] = config_hash(cfg)
write_image_store(snakemake.output.images, store)
image_grid([store.images[i * 16:(i + 1) * 16] for i in range(4)], snakemake.output.preview)
log.info("wrote %d images %s, attributes %s", len(store.images), store.images.shape[1:], store.attribute_names)
