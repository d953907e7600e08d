"""Train DLSGAN (variant dls) or its No-DLS ablation (variant nodls) (rule train_dlsgan).

The training state beside the checkpoint (``training_state.pt``, not an output) lets a killed job resume after its last
finished epoch when rerun with the same config; it is removed once the outputs are written."""
from pathlib import Path

import pandas as pd

from latentedit.dlsgan.checkpoint import save_dlsgan
from latentedit.dlsgan.train import HISTORY_PLOT_COLUMNS, DLSGANConfig, train_dlsgan
from latentedit.io.atomic import write_json
from latentedit.io.history import write_history
from latentedit.io.image_store import read_image_store
from latentedit.jobs import setup_job
from latentedit.oracles.digits_oracle import load_oracle
from latentedit.plotting import plot_curves
from latentedit.training_utils import pick_device

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
device = pick_device(snakemake.params.device)
cfg = DLSGANConfig(**snakemake.params.train, dls=snakemake.wildcards.variant == "dls")
store = read_image_store(snakemake.input.images)
resume_path = Path(snakemake.output.checkpoint).with_name("training_state.pt")
result = train_dlsgan(store.select("train").images, store.select("val").images, cfg, device,
                      oracle=load_oracle(snakemake.input.oracle, device), resume_path=resume_path)
save_dlsgan(snakemake.output.checkpoint, result)
write_history(snakemake.output.history, result["history"])
history = pd.DataFrame(result["history"])
write_json(snakemake.output.options, result["options"])
plot_curves({snakemake.wildcards.variant: history}, HISTORY_PLOT_COLUMNS, snakemake.output.curves,
            title=f"DLSGAN training ({snakemake.wildcards.variant})")
resume_path.unlink(missing_ok=True)  # the outputs above are complete
