# The digits image oracle, the world's judge: the shipped one (oracle.checkpoint, its RECIPE.json; checked against
# the digits config at parse time, scored here on this run's val/test images), or, with oracle.retrain: true, one
# trained here on the train split (latentedit.shipped says when the shipped one may judge a config's images).

if config["oracle"]["retrain"]:

    rule train_oracle:
        input:
            images="results/digits/images.h5",
            code=script_code("train_oracle.py"),
        output:
            model="results/digits/oracle/model.pt",
            metrics="results/digits/oracle/metrics.json",
            timing="benchmarks/digits/oracle.tsv",
        log:
            "logs/digits/oracle.log",
        conda:
            "../envs/latentedit.yaml"
        threads: 2
        resources:
            gpu=1,
        params:
            oracle=sorted_config("oracle/train"),
            digits=sorted_config("digits"),
            device=config["device"],
        script:
            "../workflow_scripts/train_oracle.py"

else:

    rule shipped_oracle:
        input:
            checkpoint=shipped_oracle_checkpoint(),
            recipe=shipped_oracle_recipe(),
            images="results/digits/images.h5",
            code=script_code("install_oracle.py"),
        output:
            model="results/digits/oracle/model.pt",
            metrics="results/digits/oracle/metrics.json",
            timing="benchmarks/digits/oracle.tsv",
        log:
            "logs/digits/oracle.log",
        conda:
            "../envs/latentedit.yaml"
        threads: 1
        params:
            device="cpu",
        script:
            "../workflow_scripts/install_oracle.py"
