"""Train the W* bijection T on the training codes, their labels and the perceptual features of their renders
(rule train_wstar)."""
from dataclasses import replace

import numpy as np
import pandas as pd

from latentedit.io.atomic import write_json
from latentedit.io.checkpoints import save_checkpoint
from latentedit.io.history import write_history
from latentedit.io.latent_store import latent_space, read_latent_store
from latentedit.jobs import setup_job
from latentedit.plotting import plot_curves
from latentedit.training_utils import pick_device
from latentedit.worlds import load_renderer
from latentedit.wstar.perceptual import default_perceptual, load_perceptual, render_features
from latentedit.wstar.train import HISTORY_PLOT_COLUMNS, WStarConfig, train_wstar

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
world = snakemake.wildcards.world
cfg = WStarConfig.from_options(snakemake.params.options)
cfg = replace(cfg, perceptual=cfg.perceptual or default_perceptual(world))
store = read_latent_store(snakemake.input.latents)
renderer = load_renderer(world, snakemake.input.checkpoint, device,
                         {**snakemake.params.render_options,
                          "latent_space": latent_space(store.attrs, snakemake.input.latents)})
perceptual = load_perceptual(cfg.perceptual, world, snakemake.input, device, snakemake.params.judge_options)
log.info("perceptual features: %s %s", cfg.perceptual, perceptual.spec)
rng = np.random.default_rng(cfg.seed)
data = {}
for split in ("train", "val"):
    rows = np.flatnonzero(np.asarray(store.split) == split)
    cap = cfg.max_codes if split == "train" else max(cfg.max_codes // 4, 2)
    rows = np.sort(rng.choice(rows, size=min(cap, len(rows)), replace=False))
    codes = store.latents[rows]
    data[split] = (codes, store.attributes[rows], render_features(codes, renderer, perceptual, device))
    log.info("%s: %d codes, features %s", split, len(codes), data[split][2].shape)
generator = feature_fn = None
if cfg.lambda_id > 0:
    if perceptual.differentiable is None:
        raise ValueError(f"wstar.lambda_id > 0 needs a differentiable perceptual feature map; wstar.perceptual "
                         f"{cfg.perceptual} on {world} has none (faces: ArcFace runs in onnxruntime; use vgg16)")
    generator, feature_fn = renderer.requires_grad_(False), perceptual.differentiable

model, history = train_wstar(*data["train"], *data["val"], cfg, device, generator, feature_fn)
model["attribute_names"] = list(store.attribute_names)
save_checkpoint(snakemake.output.model, model)
write_json(snakemake.output.options, {**cfg.to_dict(), "n_train_codes": len(data["train"][0]),
                                      "n_val_codes": len(data["val"][0]),
                                      "distance_scale": model["distance_scale"],
                                      "distance_norm": model["distance_norm"],
                                      "perceptual_spec": perceptual.spec})
write_history(snakemake.output.history, history)
history = pd.DataFrame(history)
plot_curves({"W*": history}, HISTORY_PLOT_COLUMNS, snakemake.output.curves, title="W* (Real NVP)")
