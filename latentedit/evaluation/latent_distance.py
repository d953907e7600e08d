"""Does an edit land in the target distribution in latent space? The Sinkhorn divergence between the edited test
source codes and the test target codes, per α of a render grid (rule ``evaluate_edit``, where the codes are edited;
the rows of the results table are :func:`latentedit.evaluation.edit_metrics.latent_distance_rows`).

S_ε is the debiased Sinkhorn divergence of LW's own loss (:mod:`latentedit.edits.sinkhorn`, Feydy et al. 2019: cost
½‖x − y‖², uniform weights, ε = blur²) — here as a measurement, at a coarser blur than training uses (below).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from latentedit.edits.model import apply_edit
from latentedit.edits.sinkhorn import default_blur, flatten_codes, half_squared_distances, sinkhorn_divergence


TARGET_BLUR_FRACTION = 0.5  # blur of the distance to the target codes: the smallest with a small noise floor


@torch.no_grad()
def sinkhorn_to_target(model: Mapping, source: torch.Tensor, target: torch.Tensor, alphas: Sequence[float],
                       blur_fraction: float = TARGET_BLUR_FRACTION) -> dict:
    """Does the edit land in the target distribution in latent space? The debiased Sinkhorn divergence
    S_ε(edited source codes at α, target codes) for every α of a render grid (cost ½‖x − y‖², uniform weights,
    ε = blur², :func:`latentedit.edits.sinkhorn.sinkhorn_divergence`), in the space the generator reads (a W* edit is
    mapped back first, so every method is measured in the same space).

    The blur is fixed per edit, ``blur_fraction`` · σ_rms of the unedited source and the target clouds
    (:func:`~latentedit.edits.sinkhorn.default_blur`): 0.5·σ_rms is the smallest blur whose noise floor between two
    samples of one law is small against the divergences between counts (the sinkhorn module's measurements), and it
    does not move with α, so the values of one edit compare across α and methods.

    Returns
    -------
    dict
        ``alphas`` (list), ``values`` (list of S_ε per α; ``values[0]`` is the unedited source codes' divergence),
        ``blur``, ``n_source``, ``n_target``.
    """
    source = torch.as_tensor(source, dtype=torch.float32)
    target = torch.as_tensor(target, dtype=torch.float32)
    blur = default_blur(source, target, fraction=blur_fraction)
    flat = flatten_codes(target)
    cost_yy = half_squared_distances(flat, flat)  # the target codes are the same at every α: their costs once
    values = [float(sinkhorn_divergence(source if float(a) == 0 else apply_edit(model, source, float(a)), target,
                                        blur=blur, cost_yy=cost_yy)[0]) for a in alphas]
    return {"alphas": [float(a) for a in alphas], "values": values, "blur": blur, "n_source": int(len(source)),
            "n_target": int(len(target))}
