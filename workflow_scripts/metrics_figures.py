"""Figures of the results table: preservation vs target change over α (the paper's Fig. 4) and latent vs image
target change at the calibrated step (Table 2) (rule metrics_figures)."""
import pandas as pd

from latentedit.plotting import plot_latent_vs_image, plot_preservation_vs_change
from latentedit.training_utils import setup_logging

log = setup_logging(snakemake.log[0])
opts = snakemake.params.plots
df = pd.read_parquet(snakemake.input.table)
plot_preservation_vs_change(df[df["source"] == "edit_metrics"], snakemake.output.curves, dpi=opts["dpi"])
plot_latent_vs_image(pd.read_csv(snakemake.input.summary), snakemake.output.latent_vs_image, dpi=opts["dpi"])
log.info("wrote %s and %s", snakemake.output.curves, snakemake.output.latent_vs_image)
