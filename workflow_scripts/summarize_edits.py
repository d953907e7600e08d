"""Target-change rate and preservation of every edit model on the test split, in latent space (rule
edits_latent_summary)."""

from latentedit.edits.evaluate import summarize_edits
from latentedit.edits.model import load_edit
from latentedit.io.atomic import atomic_path
from latentedit.io.latent_store import read_latent_store
from latentedit.io.tables import to_markdown
from latentedit.jobs import setup_job
from latentedit.labels.classifiers import load_latent_classifiers

log = setup_job(snakemake.log[0], snakemake.threads, timing=snakemake.output.timing)
store = read_latent_store(snakemake.input.latents)
classifier = load_latent_classifiers(snakemake.input.classifiers)  # CPU: a few thousand codes at most
summary = summarize_edits([load_edit(p) for p in snakemake.input.models], store, classifier,
                          snakemake.params.ifg_alpha)
log.info("latent-space edit summary:\n%s", summary.to_string())
with atomic_path(snakemake.output.csv) as tmp:
    summary.to_csv(tmp, index=False, float_format="%.6g")
with atomic_path(snakemake.output.md) as tmp:
    tmp.write_text("# Edits in latent space (test split, latent classifier)\n\n" + to_markdown(summary))
