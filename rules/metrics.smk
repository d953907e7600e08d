# Metrics: the per-(method, edit, seed) tables of rule evaluate_edit (rules/render.smk) gathered into one long
# results table for the run with provenance, the Table-1/2-style summary, and the figures.
# The figure rules alone read plots.*, so restyling reruns only them.


rule aggregate_metrics:
    input:
        unpack(stage_metrics_inputs),
        unpack(wstar_metrics_inputs),
        edit_metrics=expand(
            "results/{world}/metrics/{method}/{edit}/seed{seed}.parquet",
            method=config["edits"]["methods"],
            edit=list(config["edits"]["definitions"]),
            seed=config["edits"]["seeds"],
            allow_missing=True,
        ),
        histories=expand(
            "results/{world}/edits/{method}/{edit}/seed{seed}/history.csv",
            method=config["edits"]["methods"],
            edit=list(config["edits"]["definitions"]),
            seed=config["edits"]["seeds"],
            allow_missing=True,
        ),
        latent_classifier_metrics="results/{world}/labels/classifier_metrics.json",
        latents="results/{world}/latents.h5",
        code=script_code("aggregate_metrics.py"),
    output:
        table="results/{world}/metrics.parquet",
        summary_csv=report(
            "results/{world}/summary.csv",
            category="Edits",
            subcategory="Tables",
            caption="../report/summary.rst",
        ),
        summary_md="results/{world}/summary.md",
        timing="benchmarks/{world}/aggregate_metrics.tsv",
    log:
        "logs/{world}/aggregate_metrics.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    params:
        config_hash=results_config_hash(),
        world=config["world"],
    script:
        "../workflow_scripts/aggregate_metrics.py"


rule metrics_figures:
    input:
        table="results/{world}/metrics.parquet",
        summary="results/{world}/summary.csv",
        code=script_code("metrics_figures.py"),
    output:
        curves=report(
            "results/{world}/figures/preservation_vs_change.png",
            category="Edits",
            subcategory="Figures",
            caption="../report/preservation_vs_change.rst",
        ),
        latent_vs_image=report(
            "results/{world}/figures/latent_vs_image.png",
            category="Edits",
            subcategory="Figures",
            caption="../report/latent_vs_image.rst",
        ),
        realism=report(
            "results/{world}/figures/realism.png",
            category="Edits",
            subcategory="Figures",
            caption="../report/realism.rst",
        ),
        rescoring=report(
            "results/{world}/figures/rescoring.png",
            category="Edits",
            subcategory="Figures",
            caption="../report/rescoring.rst",
        ),
        timing="benchmarks/{world}/metrics_figures.tsv",
    log:
        "logs/{world}/metrics_figures.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    params:
        plots=sorted_config("plots"),
    script:
        "../workflow_scripts/metrics_figures.py"
