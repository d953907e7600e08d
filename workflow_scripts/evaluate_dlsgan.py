"""Quality of the DLSGAN generator the pipeline uses, on held-out real test images (rule dlsgan_quality)."""
import pandas as pd
import torch

from latentedit.dlsgan.checkpoint import load_dlsgan
from latentedit.dlsgan.evaluate import evaluate, generate
from latentedit.dlsgan.scale import differential_entropy
from latentedit.dlsgan.train import HISTORY_PLOT_COLUMNS, DLSGANConfig
from latentedit.io.atomic import write_json
from latentedit.io.image_store import read_image_store
from latentedit.io.provenance import file_hash
from latentedit.jobs import setup_job
from latentedit.oracles.digits_oracle import load_oracle
from latentedit.imaging import to_model_range, to_uint8
from latentedit.plotting import image_grid, plot_curves
from latentedit.training_utils import pick_device

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
g, d, s, ck = load_dlsgan(snakemake.input.checkpoint, device)
cfg = DLSGANConfig.from_options(ck["options"])
test = read_image_store(snakemake.input.images).select("test")
x = to_model_range(test.images, device)
quality = evaluate(g, d, s, cfg, x, load_oracle(snakemake.input.oracle, device), device, seed=cfg.seed + 2)
quality.update({"entropy": differential_entropy(s.cpu(), cfg.distribution), "n_test_images": len(x),
                "checkpoint": snakemake.input.checkpoint, "checkpoint_hash": file_hash(snakemake.input.checkpoint),
                "dls": cfg.dls, "trained_steps": ck["history"][-1]["step"] if ck["history"] else 0})
log.info("DLSGAN quality on test images (GAN encoder head, before refinement): %s", quality)
write_json(snakemake.output.quality, quality)
samples, _ = generate(g, s, 64, cfg, torch.Generator().manual_seed(cfg.seed), device)
image_grid([to_uint8(samples[i * 16:(i + 1) * 16]) for i in range(4)], snakemake.output.samples)
plot_curves({"dls" if cfg.dls else "nodls": pd.DataFrame(ck["history"])}, HISTORY_PLOT_COLUMNS,
            snakemake.output.curves, title="DLSGAN training curves of the checkpoint in use")
