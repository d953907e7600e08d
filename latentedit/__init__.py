"""latentedit: optimal-transport semantic editing in GAN latent spaces.

The library owns all the maths (data, models, losses, metrics, stores); the Snakemake workflow around it only
wires stages together. Nothing here imports Snakemake.
"""

__version__ = "0.1.0"
