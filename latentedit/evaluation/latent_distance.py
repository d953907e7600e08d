"""Does an edit land in the target distribution in latent space? The Sinkhorn divergence between the edited test
source codes and the test target codes, per α of a render grid (rule ``evaluate_edit``, where the codes are edited;
the rows of the results table are :func:`latentedit.evaluation.edit_metrics.latent_distance_rows`).

S_ε is the debiased Sinkhorn divergence of LW's own loss (:mod:`latentedit.edits.sinkhorn`, Feydy et al. 2019: cost
½‖x − y‖², uniform weights, ε = blur²) — here as a measurement, at a coarser blur than training uses (below).

**The floor.** S_ε between two finite samples of one law is not 0: in the digits W+ (1024-d, 300 codes against
≈ 500) a fresh draw of real target codes sits at S_ε ≈ 18 from the test targets (blur 0.5·σ_rms), as far as LW's
edited codes do. So beside the curve the measurement reports the *floor* of the edit: S_ε between ``n_draws`` seeded
draws of real target codes from another split (the validation split; as many as there are edited codes) and the
test target codes, at the same blur. An edit at or below its floor lands in the target distribution as closely as
this distance can tell; what it still gets wrong (digits redrawn, the count missed), the distance does not see. The
draws share codes (300 of ≈ 500), so their spread is narrower than that of independent samples. In the faces world
the validation codes are CelebA-HQ's and the test codes FFHQ's (``faces.ffhq_images``): there the floor also holds
the shift between the two datasets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from latentedit.edits.model import apply_edit
from latentedit.edits.sinkhorn import default_blur, flatten_codes, half_squared_distances, sinkhorn_divergence


TARGET_BLUR_FRACTION = 0.5  # blur of the distance to the target codes: the smallest with a small noise floor
FLOOR_DRAWS = 5  # draws of real target codes for the floor (its spread is their std)


@torch.no_grad()
def sinkhorn_to_target(model: Mapping, source: torch.Tensor, target: torch.Tensor, alphas: Sequence[float],
                       blur_fraction: float = TARGET_BLUR_FRACTION, reference: torch.Tensor | None = None,
                       n_draws: int = FLOOR_DRAWS, seed: int = 0) -> dict:
    """Does the edit land in the target distribution in latent space? The debiased Sinkhorn divergence
    S_ε(edited source codes at α, target codes) for every α of a render grid (cost ½‖x − y‖², uniform weights,
    ε = blur², :func:`latentedit.edits.sinkhorn.sinkhorn_divergence`), in the space the generator reads (a W* edit is
    mapped back first, so every method is measured in the same space).

    The blur is fixed per edit, ``blur_fraction`` · σ_rms of the unedited source and the target clouds
    (:func:`~latentedit.edits.sinkhorn.default_blur`): 0.5·σ_rms is the smallest blur whose noise floor between two
    samples of one law is small against the divergences between counts (the sinkhorn module's measurements), and it
    does not move with α, so the values of one edit compare across α and methods.

    ``reference``: real target codes of another split (validation). With them, the floor (module docstring): S_ε of
    ``n_draws`` seeded draws of min(N_source, N_reference) of them (without replacement) to the target codes — the
    distance at which a real sample of the edited cloud's size sits.

    Returns
    -------
    dict
        ``alphas`` (list), ``values`` (list of S_ε per α; ``values[0]`` is the unedited source codes' divergence),
        ``blur``, ``n_source``, ``n_target``; with ``reference`` also ``floor`` (list of S_ε per draw) and
        ``n_floor`` (codes per draw).
    """
    source = torch.as_tensor(source, dtype=torch.float32)
    target = torch.as_tensor(target, dtype=torch.float32)
    blur = default_blur(source, target, fraction=blur_fraction)
    flat = flatten_codes(target)
    cost_yy = half_squared_distances(flat, flat)  # the target codes are the same at every α: their costs once
    values = [float(sinkhorn_divergence(source if float(a) == 0 else apply_edit(model, source, float(a)), target,
                                        blur=blur, cost_yy=cost_yy)[0]) for a in alphas]
    out = {"alphas": [float(a) for a in alphas], "values": values, "blur": blur, "n_source": int(len(source)),
           "n_target": int(len(target))}
    if reference is not None:
        reference = torch.as_tensor(reference, dtype=torch.float32)
        n = min(len(source), len(reference))
        g = torch.Generator().manual_seed(seed)
        out["floor"] = [float(sinkhorn_divergence(reference[torch.randperm(len(reference), generator=g)[:n]], target,
                                                  blur=blur, cost_yy=cost_yy)[0]) for _ in range(n_draws)]
        out["n_floor"] = int(n)
    return out
