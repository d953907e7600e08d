"""Refine the projection encoder on real training images: the DLSGAN encoder (projection.space z) or the pSp-style
W/W+ head on top of it (w, wplus) (rule refine_encoder, projection.retrain: true)."""

from latentedit.dlsgan.checkpoint import load_dlsgan
from latentedit.io.atomic import write_json
from latentedit.io.image_store import read_image_store
from latentedit.io.provenance import file_hash
from latentedit.jobs import setup_job
from latentedit.projection.refine import RefineConfig, refine_projection_encoder, write_refine_history
from latentedit.projection.wplus import save_code_encoder
from latentedit.training_utils import pick_device

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
cfg = RefineConfig(**snakemake.params.projection)
g, d, s, ck = load_dlsgan(snakemake.input.checkpoint, device)
store = read_image_store(snakemake.input.images)
encoder, history = refine_projection_encoder(g, d, s, ck["options"]["distribution"], store.select("train").images,
                                             store.select("val").images, cfg, device)
generator_hash = file_hash(snakemake.input.checkpoint)
options = cfg.encoder_options()
save_code_encoder(snakemake.output.encoder, encoder.cpu(), generator_hash, [{**row, "options": options}
                                                                             for row in history])
history = write_refine_history(history, cfg.space, snakemake.output.history, snakemake.output.curves)
best = [row for row in history if row["best"]][-1]
# what a recipe shipping this encoder records (latentedit.shipped): the training, the images, the generator
write_json(snakemake.output.record, {
    "options": options, "digits": snakemake.params.digits, "history": history,
    "generator": {"sha256_16": generator_hash},
    "val": {"psnr": best["val_psnr"], "ssim": best["val_ssim"], "epoch": best["epoch"]},
})
