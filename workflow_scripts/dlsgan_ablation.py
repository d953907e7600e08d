"""DLS vs No-DLS: encoder loss and inversion curves side by side (rule dlsgan_ablation)."""
import pandas as pd

from latentedit.dlsgan.train import HISTORY_PLOT_COLUMNS
from latentedit.io.atomic import write_json
from latentedit.jobs import setup_job
from latentedit.plotting import plot_curves

log = setup_job(snakemake.log[0], timing=snakemake.output.timing)
runs = {"DLS": pd.read_csv(snakemake.input.dls), "No DLS": pd.read_csv(snakemake.input.nodls)}
summary = {name: {k: float(h.iloc[-1][k]) for k in HISTORY_PLOT_COLUMNS if k in h} for name, h in runs.items()}
summary["l_enc_ratio_nodls_over_dls"] = summary["No DLS"]["eval_l_enc"] / summary["DLS"]["eval_l_enc"]
log.info("ablation (last epoch): %s", summary)
write_json(snakemake.output.summary, summary)
plot_curves(runs, HISTORY_PLOT_COLUMNS, snakemake.output.curves, title="DLSGAN: DLS vs No DLS")
