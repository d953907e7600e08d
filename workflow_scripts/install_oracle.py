"""Take the shipped digits oracle into this run and score it on this run's val and test images (rule
shipped_oracle, oracle.retrain: false; latentedit.shipped)."""
import shutil

from latentedit.io.atomic import atomic_path, write_json
from latentedit.io.image_store import read_image_store
from latentedit.jobs import setup_job
from latentedit.oracles.digits_oracle import evaluate_oracle, load_oracle
from latentedit.shipped import read_recipe, verify_checkpoint
from latentedit.training_utils import pick_device

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
recipe = read_recipe(snakemake.input.checkpoint)
verify_checkpoint(snakemake.input.checkpoint, recipe)
device = pick_device(snakemake.params.device)
metrics = evaluate_oracle(load_oracle(snakemake.input.checkpoint, device), read_image_store(snakemake.input.images),
                          device)
log.info("shipped oracle %s (%s, commit %s) on this run's test images: %s", snakemake.input.checkpoint,
         recipe["checkpoint_sha256_16"], recipe.get("git_commit", "?")[:7],
         {k: round(v, 4) for k, v in metrics["test"].items() if not k.startswith("presence_accuracy_has")})
with atomic_path(snakemake.output.model) as tmp:
    shutil.copyfile(snakemake.input.checkpoint, tmp)
write_json(snakemake.output.metrics, {
    **metrics, "history": recipe.get("history", []), "options": recipe["config"].get("oracle", {}).get("train", {}),
    "shipped": {"checkpoint": str(snakemake.input.checkpoint), "sha256_16": recipe["checkpoint_sha256_16"],
                "git_commit": recipe.get("git_commit"), "command": recipe.get("command")},
})
