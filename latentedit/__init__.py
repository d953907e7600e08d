"""latentedit: optimal-transport semantic editing in GAN latent spaces.

The library owns all the maths (data, models, losses, metrics, stores); the Snakemake workflow around it only
wires stages together. Nothing here imports Snakemake.
"""

__version__ = "0.1.0"


def __getattr__(name):
    """``latentedit.load_run`` (:mod:`latentedit.runs`), imported on first use so that ``import latentedit`` stays
    light. ``importlib`` rather than an import statement: the workflow's code inputs (:mod:`latentedit.code_inputs`)
    read import statements, and no job runs this."""
    if name == "load_run":
        import importlib

        return importlib.import_module("latentedit.runs").load_run
    raise AttributeError(f"module 'latentedit' has no attribute {name!r}")
