# Projection: the projection encoder — the shipped refined one (projection.checkpoint, its recipe checked against the
# config at parse time: latentedit.shipped), or, with projection.retrain: true, refined here on real images with the
# generator frozen (the DLSGAN encoder for z codes, a pSp-style W/W+ head on top of it for w / wplus) — then every
# image encoded into codes of projection.space (optionally optimised per image) in the latent store, which records
# the space.

if projection_options().retrain:

    rule refine_encoder:
        input:
            checkpoint=generator_checkpoint,
            images="results/digits/images.h5",
            code=script_code("refine_encoder.py"),
        output:
            encoder="results/digits/projection/encoder.pt",
            record="results/digits/projection/refine.json",
            history="results/digits/projection/refine_history.csv",
            curves="results/digits/projection/refine_curves.png",
            timing="benchmarks/digits/refine_encoder.tsv",
        log:
            "logs/digits/refine_encoder.log",
        conda:
            "../envs/latentedit.yaml"
        threads: 2
        resources:
            gpu=1,
        params:
            projection=projection_encoder_config(),
            digits=sorted_config("digits"),
            device=config["device"],
        script:
            "../workflow_scripts/refine_encoder.py"

else:

    rule shipped_encoder:
        input:
            encoder=shipped_encoder_checkpoint(),
            recipe=shipped_encoder_recipe(),
            checkpoint=generator_checkpoint,
            code=script_code("install_encoder.py"),
        output:
            encoder="results/digits/projection/encoder.pt",
            record="results/digits/projection/refine.json",
            history="results/digits/projection/refine_history.csv",
            curves="results/digits/projection/refine_curves.png",
            timing="benchmarks/digits/refine_encoder.tsv",
        log:
            "logs/digits/refine_encoder.log",
        conda:
            "../envs/latentedit.yaml"
        threads: 1
        script:
            "../workflow_scripts/install_encoder.py"


rule project:
    input:
        checkpoint=generator_checkpoint,
        encoder="results/digits/projection/encoder.pt",
        images="results/digits/images.h5",
        oracle="results/digits/oracle/model.pt",
        code=script_code("project.py"),
    output:
        latents="results/digits/latents.h5",
        quality="results/digits/projection/quality.json",
        grid=report(
            "results/digits/projection/reconstructions.png",
            category="Generator",
            caption="../report/reconstructions.rst",
        ),
        timing="benchmarks/digits/project.tsv",
    log:
        "logs/digits/project.log",
    # first of the jobs ready after the oracle (dlsgan_quality's priority would otherwise put it before)
    priority: 2
    conda:
        "../envs/latentedit.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        projection=sorted_config("projection"),
        device=config["device"],
    script:
        "../workflow_scripts/project.py"
