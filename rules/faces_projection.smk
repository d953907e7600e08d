# Faces projection: the pSp encoder inverts every evaluation image into StyleGAN2's W+ (18×512, latent_avg added
# as the checkpoint's opts say) and writes the latent store; inversion quality on test images (pixels, identity,
# attribute agreement of the pSp reconstructions).


rule project_faces:
    input:
        images="results/faces/images.h5",
        celebahq="results/faces/celebahq.h5",  # images.h5's train/val rows are a view of it
        oracle="results/faces/oracle/model.pt",
        psp=faces_file("psp_checkpoint"),
        arcface=faces_file("arcface"),
        code=script_code("project_faces.py"),
    output:
        latents="results/faces/latents.h5",
        quality="results/faces/projection/quality.json",
        grid=report(
            "results/faces/projection/reconstructions.png",
            category="Generator",
            caption="../report/reconstructions.rst",
        ),
        timing="benchmarks/faces/project.tsv",
    log:
        "logs/faces/project.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        faces=faces_options("encode_batch_size", "identity_crop", "seed"),
        device=config["device"],
    script:
        "../workflow_scripts/project_faces.py"
