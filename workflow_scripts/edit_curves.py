"""One PNG per edit: the training curves of every method (first seed), a row each (rule edit_curves)."""
import pandas as pd

from latentedit.edits.methods import get_method
from latentedit.jobs import setup_job
from latentedit.plotting import plot_training_curves

log = setup_job(snakemake.log[0], timing=snakemake.output.timing)
histories = {}
for method, path in zip(snakemake.params.methods, snakemake.input.histories, strict=True):
    entry = get_method(method)
    histories[entry.label] = (pd.read_csv(path), list(entry.history_columns))
plot_training_curves(histories, snakemake.output.curves, title=f"training: {snakemake.wildcards.edit}")
log.info("wrote %s (%s)", snakemake.output.curves, ", ".join(f"{k}: {len(v[0])} rows" for k, v in histories.items()))
