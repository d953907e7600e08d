"""Take the shipped refined projection encoder into this run (rule shipped_encoder, projection.retrain: false;
latentedit.shipped): the file its recipe describes, refined against this run's generator."""
import shutil

from latentedit.io.atomic import atomic_path, write_json
from latentedit.io.checkpoints import load_checkpoint
from latentedit.io.provenance import file_hash
from latentedit.jobs import setup_job
from latentedit.projection.refine import write_refine_history
from latentedit.shipped import read_recipe, verify_checkpoint

log = setup_job(snakemake.log[0], timing=snakemake.output.timing)
checkpoint = snakemake.input.encoder
recipe = read_recipe(checkpoint, "encoder")
verify_checkpoint(checkpoint, recipe, "encoder")
ck = load_checkpoint(checkpoint, require=("base_checkpoint_hash", "history"))
generator_hash = file_hash(snakemake.input.checkpoint)
if ck["base_checkpoint_hash"] != generator_hash:
    raise ValueError(f"{checkpoint}: refined against the generator {ck['base_checkpoint_hash']}, this run's "
                     f"{snakemake.input.checkpoint} is {generator_hash}; set projection.retrain: true")
with atomic_path(snakemake.output.encoder) as tmp:
    shutil.copyfile(checkpoint, tmp)
history = write_refine_history(ck["history"], recipe["config"]["projection"]["space"], snakemake.output.history,
                               snakemake.output.curves)
log.info("shipped encoder %s (%s, commit %s), refined with %s: val %s", checkpoint, recipe["checkpoint_sha256_16"],
         recipe.get("git_commit", "?")[:7], recipe["config"]["projection"], recipe.get("val"))
write_json(snakemake.output.record, {
    "options": recipe["config"]["projection"], "digits": recipe["config"]["digits"], "history": history,
    "generator": recipe["generator"], "val": recipe.get("val"),
    "shipped": {"checkpoint": str(checkpoint), "sha256_16": recipe["checkpoint_sha256_16"],
                "git_commit": recipe.get("git_commit"), "command": recipe.get("command")},
})
