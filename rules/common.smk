# Helpers shared by every stage file: config checks beyond the schema, input functions, path builders.
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir))
)  # the latentedit package of this checkout

from latentedit.data.digits import DigitsConfig


wildcard_constraints:
    world="digits",
    variant="dls|nodls",


def check_config(cfg):
    """Semantic checks the schema cannot express; fail before any job runs, naming the key."""
    try:
        DigitsConfig(
            **{
                **cfg["digits"],
                "source_fractions": tuple(cfg["digits"]["source_fractions"]),
            }
        )
    except ValueError as e:
        raise ValueError(f"config error: {e}") from None


check_config(config)

# Library modules a stage's script imports are listed as inputs, so that a code change reruns that stage
# (Snakemake tracks the script file itself, not what it imports).
LIB = str(Path(workflow.basedir) / "latentedit")
CORE_CODE = [f"{LIB}/io/h5.py", f"{LIB}/io/atomic.py", f"{LIB}/io/checkpoints.py"]


def generator_checkpoint(wildcards=None):
    """The DLSGAN checkpoint the pipeline uses: trained here, or the shipped one."""
    if config["dlsgan"]["retrain"]:
        return "results/digits/dlsgan/dls/checkpoint.pt"
    path = str(
        Path(workflow.basedir) / config["dlsgan"]["checkpoint"]
    )  # relative paths: to the checkout
    if not Path(path).exists():
        raise ValueError(
            f"config error: dlsgan.checkpoint={path!r} does not exist "
            "(set dlsgan.retrain: true to train the generator here)"
        )
    return path


def final_outputs():
    return [
        "results/digits/images.h5",
        "results/digits/oracle/metrics.json",
        "results/digits/dlsgan/quality.json",
        "results/digits/dlsgan/curves.png",
        "results/digits/dlsgan/samples.png",
        "results/digits/latents.h5",
        "results/digits/projection/quality.json",
        "results/digits/projection/reconstructions.png",
    ]
