"""The options of the digits projection stage (``projection.*`` in config.yaml): one dataclass, the single source of
their defaults.

Torch is not imported here: :mod:`latentedit.config` reads this module while Snakemake parses the workflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from latentedit.io.latent_store import LATENT_SPACES


# Options only the projection step reads (which codes, and their per-image optimisation); the encoder's training
# (rule refine_encoder) does not depend on them, so changing one reruns the projection, not the training.
PROJECTION_ONLY_KEYS = ("optimize_steps", "optimize_lr", "optimize_beta1", "optimize_batch_size", "optimize_compile",
                        "optimize_layer_spread", "max_train_images")
# Where the encoder comes from (trained here, or the shipped one: latentedit.shipped); not how it is trained.
SHIPPING_KEYS = ("retrain", "checkpoint")


@dataclass(frozen=True)
class RefineConfig:
    """How real images become codes: encoder refinement (pSp-style, generator frozen), the space of the stored codes,
    and an optional per-image optimisation of each code."""

    # False: the shipped refined encoder (``checkpoint``, refined by rule refine_encoder with the options below
    # against the shipped generator; latentedit.shipped checks they match); True: refine one here (rule
    # refine_encoder, ≈ 2 min of two cores on the critical path).
    retrain: bool = False
    checkpoint: str = "checkpoints/digits_stylegan2/encoder.pt"
    refine: bool = True  # False: use the GAN's encoder head as it is (w/wplus: broadcast(mapping(E(x)∘s)))
    # W+ head: val PSNR 14.7 → 16.9 in one epoch (the per-image steps do the rest); the Z world's encoder: 2 epochs
    # (val PSNR 21.2 → 22.6; 5 epochs: 22.9)
    epochs: int = 1
    batch_size: int = 64
    lr: float = 1.0e-4
    lambda_latent: float = 1.0  # weight of L_enc(z, E(G(z∘s)), s) on generated images
    seed: int = 0
    # The space of the latent store: z (the DLSGAN input z∘s; the only one a DCGAN generator has), w
    # (mapping(z∘s)), wplus (per-layer W+, L × D; the default digits world, issue 13).
    space: str = "wplus"
    # w/wplus: weight of the latent loss ‖codes(G(z∘s)) − code of z∘s‖² on generated images (pSp's latent loss)
    lambda_w_latent: float = 1.0
    # Per-image Adam steps on each code's pixel error after encoding (0: the encoder's codes are stored). The 28-min
    # prototype of issue 13: 20 steps from the broadcast W raised all-presence agreement 0.17 → 0.92 in W+.
    optimize_steps: int = 25
    optimize_lr: float = 0.1
    # Adam's β1 for those steps. 0.9 is Adam's default; in the digits W+ world 0.7 reaches at 25 steps what 0.9 reaches
    # at 40 (600 test images: all-presence 0.917 vs 0.915, 29.0 vs 29.3 dB; README "Adam's β1 for those steps").
    optimize_beta1: float = 0.7
    # Images optimised together (the codes do not depend on it, up to rounding: losses are summed). 128 rather than
    # 256: the activations of a batch stay in cache (bench/batch_size.py: 1.3× per image-step on two threads).
    optimize_batch_size: int = 128
    # torch.compile the renderer for the optimisation (≈ 2× faster on CPU after a ≈ 40-s compile; falls back to eager
    # with a warning where compiling fails; runs of fewer than COMPILE_MIN_IMAGE_STEPS image-steps stay eager).
    optimize_compile: bool = True
    # W+ codes: weight λ of the layers' spread around their mean in those steps' objective (e4e's editability
    # regulariser; latentedit.projection.project; 0: the pixel error alone)
    optimize_layer_spread: float = 0.0
    # Train images given codes: a seeded subset of this many (None: all). Val and test images always get codes. Per-
    # image optimisation costs K generator passes per image, and only the latent classifiers read every train code.
    max_train_images: int | None = 3000

    def __post_init__(self):
        if self.space not in LATENT_SPACES:
            raise ValueError(f"projection.space must be one of {', '.join(LATENT_SPACES)}, got {self.space!r}")
        if self.max_train_images is not None and self.max_train_images < 1:
            raise ValueError(f"projection.max_train_images must be ≥ 1 or null, got {self.max_train_images}")
        if self.optimize_steps < 0 or self.optimize_batch_size < 1 or self.optimize_lr <= 0:
            raise ValueError("projection.optimize_steps must be ≥ 0, optimize_batch_size ≥ 1 and optimize_lr > 0, got "
                             f"{self.optimize_steps}, {self.optimize_batch_size}, {self.optimize_lr}")
        if self.optimize_layer_spread < 0:
            raise ValueError(f"projection.optimize_layer_spread must be ≥ 0, got {self.optimize_layer_spread}")
        if not 0 <= self.optimize_beta1 < 1:
            raise ValueError(f"projection.optimize_beta1 must be in [0, 1), got {self.optimize_beta1}")

    def encoder_options(self) -> dict:
        """The options the encoder's refinement reads (all but :data:`PROJECTION_ONLY_KEYS` and
        :data:`SHIPPING_KEYS`): what a shipped encoder's recipe records and a config must match."""
        return {k: v for k, v in asdict(self).items() if k not in PROJECTION_ONLY_KEYS + SHIPPING_KEYS}

    def optimization(self) -> dict:
        """The keyword arguments of the per-image optimisation
        (:func:`latentedit.projection.project.project_images`)."""
        return {"optimize_steps": self.optimize_steps, "optimize_lr": self.optimize_lr,
                "optimize_beta1": self.optimize_beta1, "optimize_batch_size": self.optimize_batch_size,
                "optimize_compile": self.optimize_compile, "optimize_layer_spread": self.optimize_layer_spread}
