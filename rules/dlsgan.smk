# DLSGAN: trained here only when dlsgan.retrain is true (or its outputs are asked for by name, e.g. the
# No-DLS ablation results/digits/dlsgan/nodls/checkpoint.pt); otherwise the shipped checkpoint is used.


rule train_dlsgan:
    input:
        images="results/digits/images.h5",
        oracle="results/digits/oracle/model.pt",
        code=script_code("train_dlsgan.py"),
    output:
        checkpoint="results/digits/dlsgan/{variant}/checkpoint.pt",
        history="results/digits/dlsgan/{variant}/history.csv",
        options="results/digits/dlsgan/{variant}/options.json",
        curves="results/digits/dlsgan/{variant}/curves.png",
        timing="benchmarks/digits/dlsgan_{variant}.tsv",
    log:
        "logs/digits/dlsgan_{variant}.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        train=sorted_config("dlsgan/train"),
        device=config["device"],
    script:
        "../workflow_scripts/train_dlsgan.py"


rule dlsgan_quality:
    input:
        checkpoint=generator_checkpoint,
        images="results/digits/images.h5",
        oracle="results/digits/oracle/model.pt",
        code=script_code("evaluate_dlsgan.py"),
    output:
        quality="results/digits/dlsgan/quality.json",
        curves=report(
            "results/digits/dlsgan/curves.png",
            category="Generator",
            caption="../report/dlsgan_curves.rst",
        ),
        samples=report(
            "results/digits/dlsgan/samples.png",
            category="Generator",
            caption="../report/dlsgan_samples.rst",
        ),
        timing="benchmarks/digits/dlsgan_quality.tsv",
    log:
        "logs/digits/dlsgan_quality.log",
    # One thread, and before the evaluations: it runs beside the one-thread latent classifiers once the projection
    # is done, instead of alone at the end of a two-core run (18 s of the W+ run's 829).
    priority: 1
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        device=config["device"],
    script:
        "../workflow_scripts/evaluate_dlsgan.py"


rule dlsgan_ablation:
    input:
        dls="results/digits/dlsgan/dls/history.csv",
        nodls="results/digits/dlsgan/nodls/history.csv",
        code=script_code("dlsgan_ablation.py"),
    output:
        summary="results/digits/dlsgan/ablation.json",
        curves="results/digits/dlsgan/ablation.png",
        timing="benchmarks/digits/dlsgan_ablation.tsv",
    log:
        "logs/digits/dlsgan_ablation.log",
    conda:
        "../envs/latentedit.yaml"
    script:
        "../workflow_scripts/dlsgan_ablation.py"
