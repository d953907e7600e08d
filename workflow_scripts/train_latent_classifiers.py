"""Train the latent classifiers F on the latent store and measure attribute correlations γ (rule
train_latent_classifiers)."""

from latentedit.io.atomic import write_json
from latentedit.io.latent_store import read_latent_store
from latentedit.jobs import setup_job
from latentedit.labels.classifiers import ClassifierConfig, save_latent_classifiers, train_latent_classifiers
from latentedit.labels.correlations import correlation_matrix, write_correlations
from latentedit.plotting import plot_heatmap
from latentedit.training_utils import pick_device

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
store = read_latent_store(snakemake.input.latents)
train, val, test = (store.select(s) for s in ("train", "val", "test"))
model, history, metrics = train_latent_classifiers(
    train.latents, train.attributes, val.latents, val.attributes, ClassifierConfig(**snakemake.params.classifier),
    pick_device(snakemake.params.device), attribute_names=store.attribute_names, latents_test=test.latents,
    attrs_test=test.attributes)
log.info("test accuracy per attribute: %s", {k: round(v, 4) for k, v in metrics["test"].items()})
save_latent_classifiers(snakemake.output.classifiers, model, metrics)
write_json(snakemake.output.metrics, {**metrics, "history": history})

gamma = correlation_matrix(train.attributes)  # γ = |φ| on the training split's labels
write_correlations(snakemake.output.correlations, gamma, store.attribute_names)
plot_heatmap(gamma, store.attribute_names, snakemake.output.heatmap,
             title="attribute correlation γ = |φ| (train split)")
