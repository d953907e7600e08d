# Faces data: the user's CelebA-HQ images and attribute file into an image store with a seeded train/val/test split
# (rows grouped by split), then the evaluation image store the latent store mirrors: CelebA-HQ train/val, and as test
# either the first N FFHQ images labelled by the attribute classifiers (faces.ffhq_images set) or the CelebA-HQ test
# split. images.h5 holds the FFHQ pixels only: its CelebA-HQ rows are an HDF5 virtual view of celebahq.h5, which must
# stay next to it (readers refuse images.h5 when it is missing). Both are written and read batch by batch.


rule celebahq_images:
    input:
        images=faces_file("celebahq_images"),
        attributes=faces_file("celebahq_attributes"),
        code=script_code("make_celebahq.py"),
    output:
        images="results/faces/celebahq.h5",
        preview="results/faces/celebahq_preview.png",
        timing="benchmarks/faces/celebahq_images.tsv",
    log:
        "logs/faces/celebahq_images.log",
    conda:
        "../envs/latentedit.yaml"
    params:
        faces=faces_options(
            "celebahq_images",
            "celebahq_attributes",
            "image_size",
            "split_fractions",
            "max_images",
            "seed",
        ),
    script:
        "../workflow_scripts/make_celebahq.py"


rule faces_eval_images:
    input:
        celebahq="results/faces/celebahq.h5",
        oracle="results/faces/oracle/model.pt",
        ffhq=faces_file("ffhq_images"),
        code=script_code("make_faces_eval.py"),
    output:
        images="results/faces/images.h5",
        timing="benchmarks/faces/eval_images.tsv",
    log:
        "logs/faces/eval_images.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        faces=faces_options("ffhq_images", "ffhq_n_images", "image_size"),
        device=config["device"],
    script:
        "../workflow_scripts/make_faces_eval.py"
