# Labels in latent space: the latent classifiers F (one logit per attribute, trained on the train split's codes,
# early-stopped on val, scored on test) and the absolute attribute correlation γ of the train split's labels. Both
# feed the LW preservation loss, the Latent Transformer and the latent-space evaluation of edits (rules/train.smk).


rule train_latent_classifiers:
    input:
        latents="results/{world}/latents.h5",
        code=script_code("train_latent_classifiers.py"),
    output:
        classifiers="results/{world}/labels/classifiers.pt",
        metrics="results/{world}/labels/classifier_metrics.json",
        correlations="results/{world}/labels/correlations.csv",
        heatmap=report(
            "results/{world}/labels/correlations.png",
            category="Labels",
            caption="../report/correlations.rst",
        ),
        timing="benchmarks/{world}/latent_classifiers.tsv",
    log:
        "logs/{world}/latent_classifiers.log",
    # first once the codes exist: at train_edit's priority 1 it waited for every training that does not read it and
    # then ran alone, one core idle (5 s of a W+ run), while the LW and LT trainings waited for it
    priority: 2
    conda:
        "../envs/latentedit.yaml"
    # one thread: a small MLP (30.7 s wall, 27.4 s CPU with two threads in the Z world), so it runs beside the edit
    # jobs that do not need it instead of holding both cores
    threads: 1
    resources:
        gpu=1,
    params:
        classifier=sorted_config("labels/classifier"),
        device=config["device"],
    script:
        "../workflow_scripts/train_latent_classifiers.py"
