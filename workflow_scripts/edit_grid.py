"""One PNG per edit: rows = test images, columns = input / reconstruction / each method at its calibrated step
(rule edit_grid)."""
import numpy as np

from latentedit.edits.methods import method_label
from latentedit.io.image_store import read_image_store
from latentedit.io.render_store import read_render_store
from latentedit.plotting import method_grid
from latentedit.training_utils import setup_job

log = setup_job(snakemake.log[0])
opts = snakemake.params.plots
images = read_image_store(snakemake.input.images)
columns, labels, ids = [], [], None
for path in snakemake.input.renders:
    r = read_render_store(path)
    ids = r.ids[:opts["grid_rows"]] if ids is None else ids
    if list(r.ids[:len(ids)]) != list(ids):
        raise ValueError(f"{path}: renders a different set of test images than {snakemake.input.renders[0]}")
    if not columns:
        columns += [images.images[images.rows_of(ids, f"{path} vs {snakemake.input.images}")], r.images[0, :len(ids)]]
        labels += ["input", "reconstruction"]
    d = r.calibration["d"]
    a = int(np.argmin(np.abs(r.alphas - d))) if d > 0 else 0
    columns.append(r.images[a, :len(ids)])
    labels.append(f"{method_label(r.attrs['method'])}\na={r.alphas[a]:.3g}")
method_grid(columns, labels, snakemake.output.grid)
log.info("wrote %s (%d images x %s)", snakemake.output.grid, len(ids), labels)
