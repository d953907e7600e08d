"""Table 1 of the W* paper: linear separability, DCI, distance agreement and 2AFC in the original space and in W*
(rule wstar_metrics)."""
import numpy as np
import torch

from latentedit.io.atomic import atomic_path
from latentedit.io.latent_store import latent_space, read_latent_store
from latentedit.io.tables import to_markdown
from latentedit.jobs import setup_job
from latentedit.training_utils import pick_device
from latentedit.worlds import load_renderer
from latentedit.wstar.metrics import WStarMetricsConfig, metrics_rows, space_metrics, table1
from latentedit.wstar.realnvp import load_wstar, map_codes, wstar_from_checkpoint
from latentedit.wstar.perceptual import default_perceptual, load_perceptual, render_features

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
opts = WStarMetricsConfig.from_options(snakemake.params.options).to_dict()  # defaults for what wstar.metrics omits
world = snakemake.wildcards.world
store = read_latent_store(snakemake.input.latents)
wstar = load_wstar(snakemake.input.model)
T = wstar_from_checkpoint(wstar)
renderer = load_renderer(world, snakemake.input.checkpoint, device,
                         {**snakemake.params.render_options,
                          "latent_space": latent_space(store.attrs, snakemake.input.latents)})
kind = wstar["options"].get("perceptual") or default_perceptual(world)  # T's own φ: c and m were measured with it
perceptual = load_perceptual(kind, world, snakemake.input, device, snakemake.params.judge_options)
rng = np.random.default_rng(opts["seed"])
sets = {}
for name, split in (("fit", "train"), ("eval", "test")):
    rows = np.flatnonzero(np.asarray(store.split) == split)
    rows = np.sort(rng.choice(rows, size=min(opts["max_codes"], len(rows)), replace=False))
    sets[name] = (store.latents[rows], store.attributes[rows])
f_eval = render_features(sets["eval"][0], renderer, perceptual, device)
spaces = {}
for space in ("original", "wstar"):
    def x(codes, space=space):
        return codes if space == "original" else map_codes(T, torch.as_tensor(codes)).numpy()

    spaces[space] = space_metrics(x(sets["fit"][0]), sets["fit"][1], x(sets["eval"][0]), sets["eval"][1], f_eval,
                                  list(store.attribute_names), wstar["distance_scale"], wstar["distance_norm"],
                                  opts["n_pairs"], opts["n_triplets"], opts["lasso_alpha"], opts["svm_C"],
                                  opts["seed"])
    log.info("%s: %s", space, {k: v for k, v in spaces[space].items() if k != "svm_accuracy"})
df = metrics_rows(spaces)
df.insert(0, "source", "wstar_metrics")
with atomic_path(snakemake.output.metrics) as tmp:
    df.to_parquet(tmp, index=False)
text = (f"# W*: the original latent space against W* (world {world})\n\n"
        f"{len(sets['fit'][0])} training codes fit the SVMs and Lasso regressors, {len(sets['eval'][0])} test codes "
        "are measured. svm_accuracy: held-out linear-SVM accuracy per attribute (min/max/mean over attributes); "
        "dci_*: DCI with Lasso regressors (informativeness as held-out R²); distance_diff_*: (latent − rescaled "
        "perceptual squared distance) / mean latent squared distance over random pairs; two_afc: agreement with the "
        f"perceptual distance ({kind}) on random triplets.\n\n" + to_markdown(table1(df)))
with atomic_path(snakemake.output.table) as tmp:
    tmp.write_text(text)
