# Metrics: the image oracle and the latent classifier on every render store (one Parquet per (method, edit)),
# then one long results table for the run with provenance, the Table-1/2-style summary, and the figures.
# The figure rules alone read plots.*, so restyling reruns only them.


rule edit_metrics:
    input:
        renders="results/digits/render/{method}/{edit}.h5",
        images="results/digits/images.h5",
        oracle="results/digits/oracle/model.pt",
        code=[
            f"{LIB}/evaluation/edit_metrics.py",
            f"{LIB}/io/render_store.py",
            *CORE_CODE,
        ],
    output:
        metrics="results/digits/metrics/{method}/{edit}.parquet",
    log:
        "logs/digits/metrics/{method}/{edit}.log",
    benchmark:
        "benchmarks/digits/metrics/{method}/{edit}.tsv"
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        definition=edit_selection,
        device=config["device"],
    script:
        "../workflow_scripts/edit_metrics.py"


rule aggregate_metrics:
    input:
        edit_metrics=expand(
            "results/digits/metrics/{method}/{edit}.parquet",
            method=config["edits"]["methods"],
            edit=list(config["edits"]["definitions"]),
        ),
        histories=expand(
            "results/digits/edits/{method}/{edit}/history.csv",
            method=config["edits"]["methods"],
            edit=list(config["edits"]["definitions"]),
        ),
        dlsgan_quality="results/digits/dlsgan/quality.json",
        inversion_quality="results/digits/projection/quality.json",
        oracle_metrics="results/digits/oracle/metrics.json",
        latent_classifier_metrics="results/digits/labels/classifier_metrics.json",
        latents="results/digits/latents.h5",
        code=[f"{LIB}/evaluation/aggregate.py", f"{LIB}/edits/evaluate.py"],
    output:
        table="results/digits/metrics.parquet",
        summary_csv=report(
            "results/digits/summary.csv",
            category="Edits",
            subcategory="Tables",
            caption="../report/summary.rst",
        ),
        summary_md="results/digits/summary.md",
    log:
        "logs/digits/aggregate_metrics.log",
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
        table="results/digits/metrics.parquet",
        summary="results/digits/summary.csv",
        code=[f"{LIB}/plotting.py"],
    output:
        curves=report(
            "results/digits/figures/preservation_vs_change.png",
            category="Edits",
            subcategory="Figures",
            caption="../report/preservation_vs_change.rst",
        ),
        latent_vs_image=report(
            "results/digits/figures/latent_vs_image.png",
            category="Edits",
            subcategory="Figures",
            caption="../report/latent_vs_image.rst",
        ),
    log:
        "logs/digits/metrics_figures.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    params:
        plots=sorted_config("plots"),
    script:
        "../workflow_scripts/metrics_figures.py"
