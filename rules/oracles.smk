rule train_oracle:
    input:
        images="results/digits/images.h5",
        code=script_code("train_oracle.py"),
    output:
        model="results/digits/oracle/model.pt",
        metrics="results/digits/oracle/metrics.json",
    log:
        "logs/digits/oracle.log",
    benchmark:
        "benchmarks/digits/oracle.tsv"
    conda:
        "../envs/latentedit.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        oracle=sorted_config("oracle"),
        device=config["device"],
    script:
        "../workflow_scripts/train_oracle.py"
