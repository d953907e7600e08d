"""Stack every measurement of the run into one long Parquet table with provenance, and write the Table-1/2-style
summary (rule aggregate_metrics)."""
import json
from pathlib import Path

import pandas as pd

from latentedit.evaluation.aggregate import (REALISM_METRICS, SLOT_METRICS, TABLE2_METRICS, calibration_from_table,
                                             collect, seed_summary, summary_markdown, summary_table)
from latentedit.io.atomic import atomic_path
from latentedit.io.latent_store import read_latent_store_attrs
from latentedit.io.tables import to_markdown
from latentedit.jobs import setup_job
from latentedit.wstar.metrics import table1

log = setup_job(snakemake.log[0], timing=snakemake.output.timing)
metrics = [pd.read_parquet(p) for p in snakemake.input.edit_metrics]
wstar = pd.read_parquet(snakemake.input.wstar_metrics) if snakemake.input.get("wstar_metrics") else None
# results/<world>/edits/<method>/<edit>/seed<seed>/history.csv
histories = {(Path(p).parents[2].name, Path(p).parents[1].name, int(Path(p).parent.name.removeprefix("seed"))):
             pd.read_csv(p) for p in snakemake.input.histories}
stages = {}
for name in ("dlsgan_quality", "inversion_quality", "oracle_metrics", "latent_classifier_metrics"):
    if name not in snakemake.input.keys():  # dlsgan_quality: digits only
        continue
    with open(snakemake.input[name]) as f:
        stages[name] = json.load(f)
attrs = read_latent_store_attrs(snakemake.input.latents)  # provenance only: the hashes the latent store records
provenance = {"generator_hash": str(attrs.get("generator_checkpoint_hash", "")),
              "encoder_hash": str(attrs.get("encoder_checkpoint_hash", ""))}
provenance["config_hash"] = snakemake.params.config_hash
df = collect(metrics, histories, stages, provenance, world=snakemake.params.world,
             extra=[wstar] if wstar is not None else [])
with atomic_path(snakemake.output.table) as tmp:
    df.to_parquet(tmp, index=False)
log.info("wrote %d rows (%d edit-metric rows) to %s", len(df), int((df["source"] == "edit_metrics").sum()),
         snakemake.output.table)

calibration = calibration_from_table(df)
summary = seed_summary(summary_table(df, calibration))
with atomic_path(snakemake.output.summary_csv) as tmp:
    summary.to_csv(tmp, index=False, float_format="%.6g")
tau = next(iter(calibration.values()))["tau"] if calibration else float("nan")
text = (f"# Edits at the calibrated step (world {snakemake.params.world})\n\n"
        f"Per (edit, method), α = d: the smallest step at which the latent classifier reads a fraction τ = {tau:g} "
        "of the validation source codes as edited. `latent_target_change_rate` is that reading on the rendered test "
        "codes; `target_change_rate` is what the image oracle sees on the rendered images (the paper's Table 2 "
        "comparison). Preservation and identity compare each edited image with its reconstruction (α = 0); "
        "`attribute_preservation_input` compares with the input image instead. `realism_fd` / `realism_kid`: Fréchet "
        "distance and KID of the edited images to real test images that have the target labels (features: digits "
        "the oracle's, faces Inception-v3), `realism_fd_source` the same for the real source images (how far the "
        "edit must travel); `latent_sinkhorn_to_target`: Sinkhorn divergence of the edited codes to the test target "
        "codes, and `latent_sinkhorn_floor` the same for as many real target codes of the validation split (mean of "
        "seeded draws, brackets ± 1.96 std over them): an edit at or below it is as close to the targets as real "
        "codes are. Other brackets: 95 % bootstrap interval over the test images"
        + (f"; mean ± std over {int(summary['n_seeds'].max())} training seeds (brackets: the mean of the seeds' "
           "intervals)" if len(summary) and summary["n_seeds"].max() > 1 else "")
        + ".\n\n## Target change, preservation and identity\n\n"
        + to_markdown(summary_markdown(summary, TABLE2_METRICS))
        + ("\n## Existing digits kept (the slot oracle, per slot)\n\n`slots_kept`: every digit of the reconstruction "
           "is still there, the same digit in the same slot; `clean_edit_rate`: the image oracle sees the target and "
           "the existing digits are kept (for \"add one digit\": exactly one new digit).\n\n"
           + to_markdown(summary_markdown(summary, SLOT_METRICS))
           if len(summary) and summary[SLOT_METRICS].notna().any().any() else "")
        + "\n## Realism of the edited images and latent distance to the target (lower is closer)\n\n"
        + to_markdown(summary_markdown(summary, REALISM_METRICS)))
if wstar is not None:
    text += ("\n## W*: the original latent space against W* (the W* paper's Table 1)\n\n"
             "Methods `lw_wstar` and `ifg_wstar` above edit inside W*. Held-out linear-SVM accuracy per attribute "
             "(min/max/mean), DCI (Lasso; informativeness as R²), distance agreement with the rescaled perceptual "
             "distance and the 2AFC score (results/<world>/wstar/table.md explains each).\n\n"
             + to_markdown(table1(wstar)))
with atomic_path(snakemake.output.summary_md) as tmp:
    tmp.write_text(text)
log.info("summary at alpha = d:\n%s", summary[["edit", "method", "n_seeds", "target_change_rate",
                                                "attribute_preservation", "realism_fd"]].to_string(float_format="%.3f"))
