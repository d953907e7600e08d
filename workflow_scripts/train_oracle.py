"""Train the digits image oracle (rule train_oracle, oracle.retrain: true)."""

from latentedit.io.atomic import write_json
from latentedit.io.image_store import read_image_store
from latentedit.jobs import setup_job
from latentedit.oracles.digits_oracle import OracleConfig, save_oracle, train_oracle
from latentedit.training_utils import pick_device

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
store = read_image_store(snakemake.input.images)
model, metrics = train_oracle(store, OracleConfig(**snakemake.params.oracle), pick_device(snakemake.params.device))
log.info("test: %s", {k: round(v, 4) for k, v in metrics["test"].items()})
save_oracle(snakemake.output.model, model, metrics)
# the digits config these images were made with: a recipe shipping this oracle (latentedit.shipped) records it
write_json(snakemake.output.metrics, {**metrics, "digits": snakemake.params.digits})
