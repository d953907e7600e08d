# Evaluation: every trained (method, edit, seed) renders its test source codes at α = 0 (the reconstruction) and at
# n_alphas steps in [d, 2d], d calibrated on validation codes with the latent classifier (latentedit.render.calibrate),
# into one HDF5 render store, and the same job judges the renders (image oracle, latent classifier, realism, latent
# distance: latentedit.evaluation) into one Parquet table; one PNG grid per edit compares the methods at d (first
# seed).


rule evaluate_edit:
    input:
        unpack(generator_inputs),
        unpack(judge_inputs),
        unpack(realism_inputs),
        model="results/{world}/edits/{method}/{edit}/seed{seed}/model.pt",
        latents="results/{world}/latents.h5",
        images="results/{world}/images.h5",
        classifiers="results/{world}/labels/classifiers.pt",
        code=script_code("evaluate_edit.py"),
    output:
        renders="results/{world}/render/{method}/{edit}/seed{seed}.h5",
        metrics="results/{world}/metrics/{method}/{edit}/seed{seed}.parquet",
        timing="benchmarks/{world}/evaluate/{method}/{edit}/seed{seed}.tsv",
    log:
        "logs/{world}/evaluate/{method}/{edit}/seed{seed}.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        render=sorted_config("render"),
        metrics=sorted_config("metrics"),
        definition=edit_selection,
        render_options=world_render_options,
        judge_options=world_judge_options,
        device=config["device"],
    script:
        "../workflow_scripts/evaluate_edit.py"


rule edit_grid:
    input:
        renders=lambda wc: expand(
            "results/{world}/render/{method}/{edit}/seed{seed}.h5",
            method=config["edits"]["methods"],
            edit=wc.edit,
            world=wc.world,
            seed=FIRST_SEED,
        ),
        images="results/{world}/images.h5",
        code=script_code("edit_grid.py"),
    output:
        grid=report(
            "results/{world}/figures/grid_{edit}.png",
            category="Edits",
            subcategory="Qualitative",
            labels={"edit": "{edit}"},
            caption="../report/grid.rst",
        ),
        timing="benchmarks/{world}/figures/grid_{edit}.tsv",
    log:
        "logs/{world}/figures/grid_{edit}.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    params:
        plots=sorted_config("plots"),
    script:
        "../workflow_scripts/edit_grid.py"
