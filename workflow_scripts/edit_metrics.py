"""Image-oracle, latent-classifier and realism metrics of one rendered (method, edit, seed), as a long Parquet table
(rule edit_metrics)."""
import json
import time

import numpy as np
import pandas as pd
import torch

from latentedit.edits.definitions import split_selection_mask
from latentedit.evaluation.edit_metrics import edit_metric_rows, latent_distance_rows
from latentedit.evaluation.realism import realism_rows
from latentedit.io.atomic import atomic_path
from latentedit.io.image_store import read_image_store
from latentedit.io.render_store import read_render_store
from latentedit.training_utils import pick_device, setup_logging
from latentedit.worlds import load_judge

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = pick_device(snakemake.params.device)
method, edit, seed = snakemake.wildcards.method, snakemake.wildcards.edit, int(snakemake.wildcards.seed)
opts, definition = snakemake.params.metrics, snakemake.params.definition
renders = read_render_store(snakemake.input.renders)
images = read_image_store(snakemake.input.images)
judge = load_judge(snakemake.wildcards.world, snakemake.input, device, snakemake.params.world_options, realism=True)
if list(images.attribute_names) != renders.attribute_names:
    raise ValueError(f"{snakemake.input.renders}: attributes {renders.attribute_names} differ from the image "
                     f"store's {list(images.attribute_names)}")
inputs = images.images[images.rows_of(renders.ids, f"{snakemake.input.renders} vs {snakemake.input.images}")]
real_target_images = images.images[split_selection_mask(images, definition["target"], "test")]

t_start = time.perf_counter()
a, n = renders.images.shape[:2]
pred_in = judge.predict(inputs)
pred = judge.predict(renders.images.reshape(a * n, *renders.images.shape[2:]))
real_target = judge.predict(real_target_images)["realism"]
t_judge = time.perf_counter()
df = edit_metric_rows(method=method, edit=edit, definition=definition,
                      attribute_names=renders.attribute_names, alphas=renders.alphas,
                      edited_probs=pred["probs"].reshape(a, n, -1),
                      edited_embeddings=pred["embedding"].reshape(a, n, -1),
                      input_probs=pred_in["probs"], input_embeddings=pred_in["embedding"],
                      latent_logits=renders.latent_logits, n_boot=opts["n_bootstrap"], seed=opts["seed"])
t_realism = time.perf_counter()
realism = realism_rows(method=method, edit=edit, attribute=definition["attribute"], alphas=renders.alphas,
                       edited_features=pred["realism"].reshape(a, n, -1), target_features=real_target,
                       source_features=pred_in["realism"], n_boot=opts["n_bootstrap"],
                       fd_boot=opts["fd_bootstrap"], seed=opts["seed"])
log.info("timing: the judge on %d renders, %d inputs and %d real target test images %.1f s; metrics with intervals "
         "%.1f s; realism (FD/KID with intervals) %.1f s", a * n, n, len(real_target), t_judge - t_start,
         t_realism - t_judge, time.perf_counter() - t_realism)
latent = latent_distance_rows(method=method, edit=edit, attribute=definition["attribute"], alphas=renders.alphas,
                              latent_sinkhorn=json.loads(renders.attrs["latent_sinkhorn"]))
cal = renders.calibration
extra = pd.DataFrame([{"method": method, "edit": edit, "attribute": renders.attrs["attribute"], "alpha": np.nan,
                       "metric": f"calibration.{key}", "value": float(cal[key])}
                      for key in ("d", "rate", "reached", "tau", "unit", "n_codes", "n_images")])
df = pd.concat([df, realism, latent, extra], ignore_index=True).assign(seed=seed)
with atomic_path(snakemake.output.metrics) as tmp:
    df.to_parquet(tmp, index=False)
summary = df[df["metric"].isin(["target_change_rate", "latent_target_change_rate", "attribute_preservation",
                                "identity", "realism_fd", "latent_sinkhorn_to_target"])].pivot_table(
    index="alpha", columns="metric", values="value")
log.info("%s/%s (seed %d) on %d test images:\n%s", method, edit, seed, n, summary.to_string(float_format="%.3f"))
