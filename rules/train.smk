# Per-attribute edit training: one model per (method, edit definition, seed of edits.seeds), then their latent-space
# summary (first seed). The
# methods and what each reads (classifier, W*, lambda_pres, its options section) are the registry's
# (latentedit/edits/methods.py). An edit goes one way: "remove k" is a second definition with source and target
# swapped (e.g. source {has_7: 1} → target {has_7: 0}), a separate model. Part of `all`; the target `edits` stops
# after training, the latent summary and the training curves.


rule train_edit:
    input:
        unpack(edit_labels_inputs),
        latents="results/{world}/latents.h5",
        code=edit_code,
    output:
        model="results/{world}/edits/{method}/{edit}/seed{seed}/model.pt",
        options="results/{world}/edits/{method}/{edit}/seed{seed}/options.json",
        history="results/{world}/edits/{method}/{edit}/seed{seed}/history.csv",
        timing="benchmarks/{world}/edits/{method}/{edit}/seed{seed}.tsv",
    log:
        "logs/{world}/edits/{method}/{edit}/seed{seed}.log",
    # Every training job before any evaluation job: trainings run 4-45 s and unevenly, evaluations ~10-16 s each, so
    # a long training that starts last (and its evaluation after it) no longer ends a two-core run alone.
    priority: 1
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        definition=edit_definition,
        options=edit_options,
        weight_attributes=edit_weight_attributes,
        device=config["device"],
    script:
        "../workflow_scripts/train_edit.py"


# The training curves of one edit, every method a row (first seed): one figure per edit, drawn once its trainings end,
# rather than one per training job (matplotlib's import and a figure were ≈ 1 s of each of 35 jobs).
rule edit_curves:
    input:
        histories=lambda wc: expand(
            "results/{world}/edits/{method}/{edit}/seed{seed}/history.csv",
            world=wc.world,
            method=config["edits"]["methods"],
            edit=wc.edit,
            seed=FIRST_SEED,
        ),
        code=script_code("edit_curves.py"),
    output:
        curves=report(
            "results/{world}/figures/curves_{edit}.png",
            category="Edits",
            subcategory="Training",
            labels={"edit": "{edit}"},
            caption="../report/curves.rst",
        ),
        timing="benchmarks/{world}/figures/curves_{edit}.tsv",
    log:
        "logs/{world}/figures/curves_{edit}.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    params:
        methods=config["edits"]["methods"],
    script:
        "../workflow_scripts/edit_curves.py"


rule edits_latent_summary:
    input:
        models=edit_models,
        latents="results/{world}/latents.h5",
        classifiers="results/{world}/labels/classifiers.pt",
        code=script_code("summarize_edits.py"),
    output:
        csv="results/{world}/edits/latent_target_change.csv",
        md="results/{world}/edits/latent_target_change.md",
        timing="benchmarks/{world}/edits_latent_summary.tsv",
    log:
        "logs/{world}/edits_latent_summary.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    params:
        ifg_alpha=sorted_config("edits/ifg/alpha"),
    script:
        "../workflow_scripts/summarize_edits.py"


rule edits:
    input:
        expand(
            "results/{world}/edits/latent_target_change.{ext}",
            world=WORLD,
            ext=["csv", "md"],
        ),
        expand(
            "results/{world}/figures/curves_{edit}.png",
            world=WORLD,
            edit=list(config["edits"]["definitions"]),
        ),
