# latentedit workflow: table of contents only. Logic lives in rules/common.smk and the latentedit package.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"


# The stages before the latent store differ by world; from the latent classifiers on, both share every rule.
if config["world"] == "digits":

    include: "rules/data.smk"
    include: "rules/oracles.smk"
    include: "rules/dlsgan.smk"
    include: "rules/projection.smk"

else:

    include: "rules/faces_data.smk"
    include: "rules/faces_oracle.smk"
    include: "rules/faces_projection.smk"


include: "rules/labels.smk"
include: "rules/wstar.smk"
include: "rules/train.smk"
include: "rules/render.smk"
include: "rules/metrics.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
