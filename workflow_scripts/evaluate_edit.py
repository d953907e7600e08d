"""Evaluate one trained (method, edit, seed) (rule evaluate_edit): calibrate its step d on validation codes, render
its test source codes at α ∈ {0} ∪ [d, 2d] into a render store, then judge the renders (image oracle, latent
classifier, realism, latent distance) into a long Parquet table.

One job, not two: rendering and judging are seconds each, and a second job per (method, edit, seed) cost a second
interpreter start-up and a re-read of the renders (README "Measured").
"""
import json
import time

import numpy as np
import pandas as pd
import torch

from latentedit.edits.definitions import select_codes, split_selection_mask
from latentedit.edits.model import load_edit
from latentedit.evaluation.edit_metrics import edit_metric_rows, latent_distance_rows
from latentedit.evaluation.latent_distance import sinkhorn_to_target
from latentedit.evaluation.realism import realism_rows
from latentedit.io.atomic import atomic_path
from latentedit.io.image_store import open_image_store
from latentedit.io.latent_store import latent_space, read_latent_store
from latentedit.io.provenance import file_hash
from latentedit.io.render_store import RenderStore, write_render_store
from latentedit.jobs import setup_job
from latentedit.labels.classifiers import load_latent_classifiers
from latentedit.render.calibrate import alpha_grid, calibrate_edit
from latentedit.render.render import render_codes, render_edit
from latentedit.training_utils import pick_device
from latentedit.worlds import load_judge, load_renderer

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
opts, definition = snakemake.params.render, snakemake.params.definition
method, edit, seed = snakemake.wildcards.method, snakemake.wildcards.edit, int(snakemake.wildcards.seed)
world = snakemake.wildcards.world
store = read_latent_store(snakemake.input.latents)
space = latent_space(store.attrs, snakemake.input.latents)
model = load_edit(snakemake.input.model)
trained_in = model["options"].get("latent_space", space)  # recorded by the trainers that know it
if trained_in != space:
    raise ValueError(f"{snakemake.input.model}: the edit was trained on {trained_in} codes, "
                     f"{snakemake.input.latents} holds {space} codes: retrain it")
classifier = load_latent_classifiers(snakemake.input.classifiers)  # CPU: a few thousand codes per call
names = list(store.attribute_names)
k, t = names.index(definition["attribute"]), int(definition["target"][definition["attribute"]])

# --- calibration and rendering ---
val_source = torch.as_tensor(select_codes(store, definition["source"], "val")[0])
val_target = torch.as_tensor(select_codes(store, definition["target"], "val")[0])
if len(val_source) == 0:
    raise ValueError(f"edit {edit}: no validation source codes to calibrate on")
cal = calibrate_edit(model, val_source, val_target, classifier, k, t, tau=opts["calibration_rate"])
log.info("calibration of %s/%s on %d val codes: %s", method, edit, len(val_source), cal)
if not cal.reached:
    log.warning("%s/%s: the latent classifier never reads %.3f of the edits as done (best %.3f at alpha %.4g)",
                method, edit, cal.tau, cal.rate, cal.d)

codes, ids = render_codes(store, definition["source"], opts["max_images"], opts["seed"])
if len(codes) == 0:
    raise ValueError(f"edit {edit}: no test source codes to render")
with open_image_store(snakemake.input.images) as images:  # the rows judged below, not the whole store
    if list(images.attribute_names) != list(store.attribute_names):
        raise ValueError(f"{snakemake.input.latents}: attributes {list(store.attribute_names)} differ from the image "
                         f"store's {list(images.attribute_names)} ({snakemake.input.images})")
    inputs = images.images[images.rows_of(ids, f"{snakemake.input.latents} vs {snakemake.input.images}")]
    real_target_images = images.images[split_selection_mask(images, definition["target"], "test")]
alphas = np.asarray(alpha_grid(cal.d, opts["n_alphas"]), dtype=np.float64)
g = load_renderer(world, snakemake.input.checkpoint, device,
                  {**snakemake.params.render_options, "latent_space": space})
rendered, latent_logits = render_edit(model, g, codes, alphas, classifier, device, opts["batch_size"],
                                      desc=f"render {method}/{edit}")
del g
log.info("rendered %d test codes at %d strengths %s", len(codes), len(alphas), [round(a, 4) for a in alphas])
test_target = torch.as_tensor(select_codes(store, definition["target"], "test")[0])
t0 = time.perf_counter()
latent_sinkhorn = sinkhorn_to_target(model, codes, test_target, alphas, reference=val_target)
log.info("Sinkhorn divergence to the %d test target codes (blur %.4g, %.1f s): %s; floor (%d val target codes per "
         "draw) %s", len(test_target), latent_sinkhorn["blur"], time.perf_counter() - t0,
         [round(v, 4) for v in latent_sinkhorn["values"]], latent_sinkhorn["n_floor"],
         [round(v, 4) for v in latent_sinkhorn["floor"]])
calibration = {**cal.to_dict(), "n_images": int(len(codes))}
write_render_store(snakemake.output.renders, RenderStore(
    images=rendered, alphas=alphas, ids=ids, latent_logits=latent_logits, attribute_names=names,
    attrs={"method": method, "edit": edit, "attribute": definition["attribute"], "target_value": t,
           "calibration": json.dumps(calibration), "latent_sinkhorn": json.dumps(latent_sinkhorn),
           "edit_model_hash": file_hash(snakemake.input.model),
           "generator_checkpoint_hash": file_hash(snakemake.input.checkpoint)}))

# --- judging the renders ---
judge = load_judge(world, snakemake.input, device, snakemake.params.judge_options, realism=True)
metric_opts = snakemake.params.metrics
t_start = time.perf_counter()
a, n = rendered.shape[:2]
pred_in = judge.predict(inputs)
pred = judge.predict(rendered.reshape(a * n, *rendered.shape[2:]))
real_target = judge.predict(real_target_images)["realism"]
t_judge = time.perf_counter()
df = edit_metric_rows(method=method, edit=edit, definition=definition, attribute_names=names, alphas=alphas,
                      edited_probs=pred["probs"].reshape(a, n, -1),
                      edited_embeddings=pred["embedding"].reshape(a, n, -1),
                      input_probs=pred_in["probs"], input_embeddings=pred_in["embedding"],
                      latent_logits=latent_logits,
                      edited_slots=pred["slots"].reshape(a, n, -1) if "slots" in pred else None,
                      empty_slot=judge.empty_slot,
                      n_boot=metric_opts["n_bootstrap"], seed=metric_opts["seed"])
t_realism = time.perf_counter()
realism = realism_rows(method=method, edit=edit, attribute=definition["attribute"], alphas=alphas,
                       edited_features=pred["realism"].reshape(a, n, -1), target_features=real_target,
                       source_features=pred_in["realism"], n_boot=metric_opts["n_bootstrap"],
                       fd_boot=metric_opts["fd_bootstrap"], seed=metric_opts["seed"])
log.info("timing: the judge on %d renders, %d inputs and %d real target test images %.1f s; metrics with intervals "
         "%.1f s; realism (FD/KID with intervals) %.1f s", a * n, n, len(real_target), t_judge - t_start,
         t_realism - t_judge, time.perf_counter() - t_realism)
latent = latent_distance_rows(method=method, edit=edit, attribute=definition["attribute"], alphas=alphas,
                              latent_sinkhorn=latent_sinkhorn)
extra = pd.DataFrame([{"method": method, "edit": edit, "attribute": definition["attribute"], "alpha": np.nan,
                       "metric": f"calibration.{key}", "value": float(calibration[key])}
                      for key in ("d", "rate", "reached", "tau", "unit", "n_codes", "n_images")])
df = pd.concat([df, realism, latent, extra], ignore_index=True).assign(seed=seed)
with atomic_path(snakemake.output.metrics) as tmp:
    df.to_parquet(tmp, index=False)
summary = df[df["metric"].isin(["target_change_rate", "latent_target_change_rate", "attribute_preservation",
                                "clean_edit_rate", "identity", "realism_fd", "latent_sinkhorn_to_target"])].pivot_table(
    index="alpha", columns="metric", values="value")
log.info("%s/%s (seed %d) on %d test images:\n%s", method, edit, seed, n, summary.to_string(float_format="%.3f"))
