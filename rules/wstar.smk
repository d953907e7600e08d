# W*: a Real NVP bijection T of the latent space trained for linear attribute separation and perceptual distance
# unfolding (latentedit/wstar), then Table 1 of the paper in both spaces. The perceptual features are
# wstar.perceptual's (digits: the oracle's; faces: VGG16 blocks 2-4 from faces.vgg16_weights, or the judge's
# ArcFace). The W* edit methods (lw_wstar, ifg_wstar) read the trained T; the stage runs when one of them is
# configured (or when asked for by the target `wstar`).


rule train_wstar:
    input:
        unpack(generator_inputs),
        unpack(wstar_perceptual_inputs),
        latents="results/{world}/latents.h5",
        code=script_code("train_wstar.py"),
    output:
        model="results/{world}/wstar/model.pt",
        options="results/{world}/wstar/options.json",
        history="results/{world}/wstar/history.csv",
        curves="results/{world}/wstar/curves.png",
        timing="benchmarks/{world}/wstar/train_wstar.tsv",
    log:
        "logs/{world}/wstar/train_wstar.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        options=wstar_train_options,
        render_options=world_render_options,
        judge_options=world_judge_options,
        device=config["device"],
    script:
        "../workflow_scripts/train_wstar.py"


rule wstar_metrics:
    input:
        unpack(generator_inputs),
        unpack(wstar_perceptual_inputs),
        model="results/{world}/wstar/model.pt",
        latents="results/{world}/latents.h5",
        code=script_code("wstar_metrics.py"),
    output:
        metrics="results/{world}/wstar/metrics.parquet",
        table="results/{world}/wstar/table.md",
        timing="benchmarks/{world}/wstar/wstar_metrics.tsv",
    log:
        "logs/{world}/wstar/wstar_metrics.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        options=wstar_metrics_options,
        render_options=world_render_options,
        judge_options=world_judge_options,
        device=config["device"],
    script:
        "../workflow_scripts/wstar_metrics.py"


rule wstar:
    input:
        expand("results/{world}/wstar/table.md", world=WORLD),
