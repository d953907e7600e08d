"""The one training loop of the library, :func:`fit` (epochs, step cap, early stopping with the best state kept),
and the helpers every trainer shares: seeding, device choice, the optimiser (:class:`Adam`). A workflow job's setup
(logging, allocator, threads) is :func:`latentedit.jobs.setup_job`."""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam
from tqdm import tqdm

from latentedit.devices import claim_cuda_index

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``/``cuda`` force one; ``cuda:<i>`` is taken as given.

    A bare CUDA choice with several visible GPUs claims a free one for the life of the process
    (:func:`latentedit.devices.claim_cuda_index`), makes it the current device and returns ``cuda:<i>``, so
    concurrent jobs on one box use different GPUs."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type != "cuda" or device.index is not None or not torch.cuda.is_available():
        return device
    index = claim_cuda_index(torch.cuda.device_count())
    if index:  # code that says "cuda" or .cuda() lands on the claimed device too (0 is already current)
        torch.cuda.set_device(index)
    return torch.device("cuda", index)


class Adam:
    """Adam (Kingma & Ba 2015), the update of ``torch.optim.Adam`` through its functional form
    ``torch.optim.adam.adam``, so the parameters it gives are torch's to the bit (``tests/test_training_utils.py``).

    Why not ``torch.optim.Adam`` itself: ``torch.optim.Optimizer`` wraps ``step`` and ``zero_grad`` so that their
    first call imports ``torch._dynamo``, 1.0–1.4 s of CPU in every training job that never compiles anything (the
    default run's 20 LW and LT trainings and its latent classifiers). Parameter groups may set their own ``lr`` and
    ``weight_decay`` (LT's equalised learning rate); there is no closure, AMSGrad or ``state_dict``: the DLSGAN
    training, which checkpoints its optimisers to resume, keeps ``torch.optim.Adam``."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        params = list(params)
        if not params:
            raise ValueError("Adam got an empty parameter list")  # as torch.optim.Adam: a frozen model trains nothing
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in groups]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (state created at its first update, as torch does)."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p not in self.state:
                    self.state[p] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p),
                                     "exp_avg_sq": torch.zeros_like(p)}
            states = [self.state[p] for p in params]
            beta1, beta2 = group["betas"]
            adam(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                 [], [s["step"] for s in states], has_complex=any(torch.is_complex(p) for p in params),
                 amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                 eps=group["eps"], maximize=False)


class EarlyStopping:
    """Stop when ``metric`` has not improved by more than ``max(min_delta, min_rel_delta·|best|)`` for ``patience``
    evaluations (None: never) and, with ``patience_steps``, for at least that many optimiser steps (so that patience
    does not shrink to a handful of steps when an evaluation comes after every one or two batches). The relative part
    makes the threshold independent of the loss's scale (LW's Sinkhorn loss is ≈ 10 on 64-d codes, ≈ 190 on W+)."""

    def __init__(self, patience: int | None, mode: str = "max", min_delta: float = 0.0, patience_steps: int = 0,
                 min_rel_delta: float = 0.0):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if min_delta < 0 or min_rel_delta < 0:
            raise ValueError(f"min_delta and min_rel_delta must be ≥ 0, got {min_delta} and {min_rel_delta}")
        self.patience, self.mode, self.min_delta, self.patience_steps = patience, mode, min_delta, patience_steps
        self.min_rel_delta = min_rel_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.bad = 0
        self.steps_since_best = 0

    @property
    def threshold(self) -> float:
        """The improvement over the best value that counts: max(min_delta, min_rel_delta·|best|)."""
        if math.isinf(self.best):
            return self.min_delta
        return max(self.min_delta, self.min_rel_delta * abs(self.best))

    def step(self, metric: float, steps: int = 0) -> bool:
        """Record one evaluation after ``steps`` more optimiser steps; return True when it is the best so far."""
        delta = self.threshold
        better = metric > self.best + delta if self.mode == "max" else metric < self.best - delta
        if better:
            self.best, self.bad, self.steps_since_best = metric, 0, 0
        else:
            self.bad += 1
            self.steps_since_best += steps
        return better

    @property
    def should_stop(self) -> bool:
        return (self.patience is not None and self.bad >= self.patience
                and self.steps_since_best >= self.patience_steps)


def fit(module: nn.Module, train_epoch: Callable[[int, int | None], tuple[dict[str, float], int]],
        evaluate: Callable[[], dict[str, float]], *, monitor: str, max_epochs: int, mode: str = "min",
        patience: int | None = None, min_delta: float = 0.0, max_steps: int | None = None,
        evaluate_before: bool = False, train_columns: Sequence[str] = (), name: str = "training",
        progress: bool = True, patience_steps: int = 0, eval_every_steps: int = 0,
        min_rel_delta: float = 0.0) -> tuple[list[dict], dict | None]:
    """Train ``module`` epoch by epoch, early-stop on ``monitor`` and restore the state of the best evaluation.

    Every epoch runs ``module.train()`` and ``train_epoch``; then, once at least ``eval_every_steps`` optimiser steps
    have passed since the last evaluation (0: after every epoch), ``module.eval()`` and ``evaluate``, and appends the
    row ``{epoch, steps, **train means, **evaluate(), best, seconds}`` (train means weighted by the steps of each epoch
    since the last row); ``best`` marks an improvement of ``monitor`` by more than ``min_delta`` and
    ``min_rel_delta`` × |best so far| (:class:`EarlyStopping`), and the best row's ``module.state_dict()`` is
    deep-copied. Training ends after ``max_epochs``, after ``patience`` evaluations (and at least ``patience_steps``
    optimiser steps) without improvement, once ``max_steps`` steps are taken, or when an epoch takes no step (that
    epoch gets no row); steps not yet evaluated then get a last row. The module is returned to the best state (the
    initial one when no row is best) and left in eval mode.

    Parameters
    ----------
    module : nn.Module
        Whose state is snapshotted and restored (the trainer's optimiser holds its parameters).
    train_epoch : callable (epoch, step_budget) → (dict, int)
        One epoch of optimisation: the epoch's ``train_*`` means and the number of optimiser steps taken, at most
        ``step_budget`` (``max_steps`` minus the steps so far; None without ``max_steps``). 0 steps ends training.
    evaluate : callable () → dict
        The validation values of the current state (``val_*`` and any other column).
    monitor : str
        Column of the row that early stopping watches (from ``evaluate`` or a ``train_*`` mean).
    max_epochs : int
    mode : {"min", "max"}
        Whether a lower or a higher ``monitor`` is better.
    patience : int, optional
        Evaluations (epochs, unless ``eval_every_steps`` groups them) without improvement before stopping; None: never
        stop early.
    patience_steps : int
        … and at least this many optimiser steps since the best row, so that patience does not shrink to a handful of
        steps when an epoch is one or two batches (0: evaluations only).
    eval_every_steps : int
        Evaluate only once this many steps have passed since the last row (0 or any value up to the steps of one
        epoch: every epoch). Where an epoch is one batch, evaluating after each would cost as much as the training.
    min_delta : float
        Smallest change of ``monitor`` that counts as an improvement, in its units.
    min_rel_delta : float
        … and, relative to the best value so far, the smallest fraction of it that counts (0: none).
    max_steps : int, optional
        Cap on optimiser steps over the whole run (the epoch that reaches it is evaluated and ends training).
    evaluate_before : bool
        Start with an epoch −1 row (steps 0, NaN ``train_columns``, ``seconds`` 0) evaluating the initial state. It
        competes for best (and counts for patience) when ``monitor`` is one of ``evaluate``'s keys, and is then
        marked best — the initial state is the fallback that is restored when nothing beats it.
    train_columns : sequence of str
        The ``train_*`` keys of ``train_epoch``, NaN in the epoch −1 row.
    name : str
        Progress-bar and log prefix.
    progress : bool
        Show a tqdm bar over epochs (postfix: the last and the best ``monitor``); every row is also logged.

    Returns
    -------
    history : list of dict
        The rows, epoch −1 first when ``evaluate_before``.
    best_row : dict or None
        The last row marked best (the restored state), None when none is.
    """
    stopper = EarlyStopping(patience, mode=mode, min_delta=min_delta, patience_steps=patience_steps,
                            min_rel_delta=min_rel_delta)
    best_state, history, steps, t0 = copy.deepcopy(module.state_dict()), [], 0, time.time()
    if evaluate_before:
        module.eval()
        values = evaluate()
        row = {"epoch": -1, "steps": 0, **dict.fromkeys(train_columns, math.nan), **values,
               "best": monitor in values, "seconds": 0.0}
        if row["best"]:
            stopper.step(row[monitor])
        history.append(row)
        log.info("%s before training: %s", name, row)
    # progress=False hides the bar; otherwise tqdm's own default (and TQDM_DISABLE) decides
    pbar = tqdm(range(max_epochs), desc=name, leave=False, **({} if progress else {"disable": True}))
    pending: list[tuple[int, int, dict]] = []  # (epoch, steps, train means) of each epoch since the last row

    def record() -> None:
        nonlocal pending, best_state
        module.eval()
        epoch, _, means = pending[-1]
        taken = sum(n for _, n, _ in pending)
        if len(pending) > 1:  # several epochs: their means weighted by their steps
            means = {k: sum(m[k] * n for _, n, m in pending) / taken for k in means}
        row = {"epoch": epoch, "steps": steps, **means, **evaluate()}
        row["best"] = stopper.step(row[monitor], taken)
        row["seconds"] = time.time() - t0
        history.append(row)
        pending = []
        if row["best"]:
            best_state = copy.deepcopy(module.state_dict())
        log.info("%s epoch %d: %s", name, epoch, row)  # the rule's log shows every evaluation
        pbar.set_postfix({monitor: f"{row[monitor]:.4g}", "best": f"{stopper.best:.4g}"})

    for epoch in pbar:
        module.train()
        means, taken = train_epoch(epoch, None if max_steps is None else max_steps - steps)
        if taken == 0:
            break
        steps += taken
        pending.append((epoch, taken, means))
        at_cap = max_steps is not None and steps >= max_steps
        if sum(n for _, n, _ in pending) < eval_every_steps and not at_cap:
            continue
        record()
        if stopper.should_stop:
            log.info("%s: early stop after epoch %d: %s has not improved by more than %.4g for %d evaluations (%d "
                     "steps)", name, epoch, monitor, stopper.threshold, stopper.bad, stopper.steps_since_best)
            break
        if at_cap:
            log.info("%s: max_steps = %d reached at epoch %d", name, max_steps, epoch)
            break
    if pending:  # the last epochs' steps, not yet evaluated
        record()
    pbar.close()
    module.load_state_dict(best_state)
    module.eval()
    best_row = next((r for r in reversed(history) if r["best"]), None)
    if best_row is None:
        log.warning("%s done: %s never improved; the initial state is kept (%d steps)", name, monitor, steps)
    else:
        log.info("%s done: best %s = %.6g at epoch %d (%d steps, %.1f s)", name, monitor, best_row[monitor],
                 best_row["epoch"], steps, time.time() - t0)
    return history, best_row
