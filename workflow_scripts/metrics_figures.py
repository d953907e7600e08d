"""Figures of the results table: preservation vs target change over α (the paper's Fig. 4), latent vs image target
change at the calibrated step (Table 2), realism at the calibrated step, and the re-scoring heat maps
(rule metrics_figures)."""
import pandas as pd

from latentedit.edits.methods import method_label
from latentedit.evaluation.aggregate import rescoring_matrices
from latentedit.jobs import setup_job
from latentedit.plotting import plot_latent_vs_image, plot_preservation_vs_change, plot_realism, plot_rescoring

log = setup_job(snakemake.log[0], timing=snakemake.output.timing)
opts = snakemake.params.plots
table = pd.read_parquet(snakemake.input.table)
df = table[table["source"] == "edit_metrics"]
first_seed = df[df["seed"] == df["seed"].min()].assign(method=lambda d: d["method"].map(method_label))
summary = pd.read_csv(snakemake.input.summary).assign(method=lambda d: d["method"].map(method_label))
plot_preservation_vs_change(first_seed, snakemake.output.curves, dpi=opts["dpi"])
plot_latent_vs_image(summary, snakemake.output.latent_vs_image, dpi=opts["dpi"])
plot_realism(summary, snakemake.output.realism, dpi=opts["dpi"])
plot_rescoring({method_label(m): t for m, t in rescoring_matrices(df).items()}, snakemake.output.rescoring,
               dpi=opts["dpi"])
log.info("wrote %s", ", ".join(str(p) for p in snakemake.output if p != snakemake.output.timing))
