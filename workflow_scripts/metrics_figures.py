"""Figures of the results table: preservation vs target change over α (the paper's Fig. 4) and latent vs image
target change at the calibrated step (Table 2) (rule metrics_figures)."""
import pandas as pd

from latentedit.edits.methods import method_label
from latentedit.plotting import plot_latent_vs_image, plot_preservation_vs_change
from latentedit.training_utils import setup_logging

log = setup_logging(snakemake.log[0])
opts = snakemake.params.plots
df = pd.read_parquet(snakemake.input.table)
df = df[df["source"] == "edit_metrics"].assign(method=lambda d: d["method"].map(method_label))  # figures: labels
summary = pd.read_csv(snakemake.input.summary).assign(method=lambda d: d["method"].map(method_label))
plot_preservation_vs_change(df, snakemake.output.curves, dpi=opts["dpi"])
plot_latent_vs_image(summary, snakemake.output.latent_vs_image, dpi=opts["dpi"])
log.info("wrote %s and %s", snakemake.output.curves, snakemake.output.latent_vs_image)
