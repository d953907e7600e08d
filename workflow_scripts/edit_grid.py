"""One PNG per edit: rows = test images, columns = input / reconstruction / each method at its calibrated step
(rule edit_grid)."""
import numpy as np

from latentedit.edits.methods import method_label
from latentedit.io.image_store import open_image_store
from latentedit.io.render_store import read_render_store
from latentedit.jobs import setup_job
from latentedit.plotting import method_grid

log = setup_job(snakemake.log[0], timing=snakemake.output.timing)
opts = snakemake.params.plots
columns, labels, ids = [], [], None
for path in snakemake.input.renders:
    r = read_render_store(path)
    ids = r.ids[:opts["grid_rows"]] if ids is None else ids
    if list(r.ids[:len(ids)]) != list(ids):
        raise ValueError(f"{path}: renders a different set of test images than {snakemake.input.renders[0]}")
    if not columns:
        columns.append(r.images[0, :len(ids)])
        labels.append("reconstruction")
    d = r.calibration["d"]
    a = int(np.argmin(np.abs(r.alphas - d))) if d > 0 else 0
    columns.append(r.images[a, :len(ids)])
    labels.append(f"{method_label(r.attrs['method'])}\na={r.alphas[a]:.3g}")
with open_image_store(snakemake.input.images) as images:  # the grid's rows only, not the whole store
    columns.insert(0, images.images[images.rows_of(ids, f"{snakemake.input.renders[0]} vs {snakemake.input.images}")])
labels.insert(0, "input")
method_grid(columns, labels, snakemake.output.grid)
log.info("wrote %s (%d images x %s)", snakemake.output.grid, len(ids), labels)
