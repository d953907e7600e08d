"""Calibrate one (method, edit)'s step d on validation codes, then render its test source codes at
α ∈ {0} ∪ [d, 2d] into a render store (rule render_edit)."""
import json
import time

import numpy as np
import torch

from latentedit.edits.definitions import select_codes
from latentedit.edits.model import load_edit
from latentedit.evaluation.latent_distance import sinkhorn_to_target
from latentedit.io.latent_store import read_latent_store
from latentedit.io.provenance import file_hash
from latentedit.io.render_store import RenderStore, write_render_store
from latentedit.labels.classifiers import load_latent_classifiers
from latentedit.render.calibrate import alpha_grid, calibrate, latent_rate_function, natural_unit
from latentedit.render.render import render_codes, render_edit
from latentedit.training_utils import pick_device, setup_logging
from latentedit.worlds import load_renderer

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = pick_device(snakemake.params.device)
opts, definition = snakemake.params.render, snakemake.params.definition
method, edit = snakemake.wildcards.method, snakemake.wildcards.edit
store = read_latent_store(snakemake.input.latents)
model = load_edit(snakemake.input.model)
classifier = load_latent_classifiers(snakemake.input.classifiers)  # CPU: a few thousand codes per call
names = list(store.attribute_names)
k, t = names.index(definition["attribute"]), int(definition["target"][definition["attribute"]])

val_source = torch.as_tensor(select_codes(store, definition["source"], "val")[0])
val_target = torch.as_tensor(select_codes(store, definition["target"], "val")[0])
if len(val_source) == 0:
    raise ValueError(f"edit {edit}: no validation source codes to calibrate on")
cal = calibrate(latent_rate_function(model, val_source, classifier, k, t), tau=opts["calibration_rate"],
                unit=natural_unit(model, val_source, val_target), n_codes=len(val_source))
log.info("calibration of %s/%s on %d val codes: %s", method, edit, len(val_source), cal)
if not cal.reached:
    log.warning("%s/%s: the latent classifier never reads %.3f of the edits as done (best %.3f at alpha %.4g)",
                method, edit, cal.tau, cal.rate, cal.d)

codes, ids = render_codes(store, definition["source"], opts["max_images"], opts["seed"])
if len(codes) == 0:
    raise ValueError(f"edit {edit}: no test source codes to render")
alphas = alpha_grid(cal.d, opts["n_alphas"])
g = load_renderer(snakemake.wildcards.world, snakemake.input.checkpoint, device, snakemake.params.world_options)
images, logits = render_edit(model, g, codes, alphas, classifier, device, opts["batch_size"],
                             desc=f"render {method}/{edit}")
log.info("rendered %d test codes at %d strengths %s", len(codes), len(alphas), [round(a, 4) for a in alphas])
test_target = torch.as_tensor(select_codes(store, definition["target"], "test")[0])
t0 = time.perf_counter()
latent_sinkhorn = sinkhorn_to_target(model, codes, test_target, alphas)
log.info("Sinkhorn divergence to the %d test target codes (blur %.4g, %.1f s): %s", len(test_target),
         latent_sinkhorn["blur"], time.perf_counter() - t0, [round(v, 4) for v in latent_sinkhorn["values"]])
write_render_store(snakemake.output.renders, RenderStore(
    images=images, alphas=np.asarray(alphas, dtype=np.float64), ids=ids, latent_logits=logits, attribute_names=names,
    attrs={"method": method, "edit": edit, "attribute": definition["attribute"], "target_value": t,
           "calibration": json.dumps({**cal.to_dict(), "n_images": int(len(codes))}),
           "latent_sinkhorn": json.dumps(latent_sinkhorn), "edit_model_hash": file_hash(snakemake.input.model),
           "generator_checkpoint_hash": file_hash(snakemake.input.checkpoint)}))
