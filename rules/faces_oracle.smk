# The faces world's image oracle: classifiers of CelebA's 40 attributes (a torchvision ResNet) trained on the
# CelebA-HQ train split, early-stopped on val, scored on test. With ArcFace it judges every rendered edit.


rule train_attribute_classifier:
    input:
        images="results/faces/celebahq.h5",
        code=script_code("train_attribute_classifier.py"),
    output:
        model="results/faces/oracle/model.pt",
        metrics="results/faces/oracle/metrics.json",
        history="results/faces/oracle/history.csv",
        timing="benchmarks/faces/oracle.tsv",
    log:
        "logs/faces/oracle.log",
    conda:
        "../envs/latentedit.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        classifier=sorted_keys(config["faces"]["attribute_classifier"]),
        device=config["device"],
    script:
        "../workflow_scripts/train_attribute_classifier.py"
