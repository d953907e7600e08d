"""The editing methods: one registry entry per method, read by the workflow, ``train_edit``, calibration and figures.

Adding a method is one :class:`Method` entry in :data:`METHODS` plus one trainer module that defines
``train_edit_job(job) -> TrainedEdit`` (:mod:`latentedit.edits.train`); nothing else names a method. The
workflow derives every per-method fact from here: the method's inputs (the latent classifier and γ, the W* model),
the config section it receives, whether it reads an edit definition's ``lambda_pres`` or ``labels.weight_attributes``
or the generator checkpoint, and the library code its training jobs run (its trainer module and what that imports).

This module imports nothing but the standard library: ``rules/`` read it while Snakemake parses the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Method:
    """One editing method.

    Attributes
    ----------
    name : str
        The ``{method}`` wildcard and the ``method`` column of every table.
    label : str
        How figures name it.
    trainer : str
        The module whose ``train_edit_job`` trains it (imported by name: a training job imports its own trainer
        only, so changing ``lt.py`` reruns the LT jobs alone).
    options : str
        Its config section, ``edits.<options>`` (methods of one family share one: ``lw_nopres`` reads ``edits.lw``).
    edit_type : str
        What the trained model holds (:mod:`latentedit.edits.model`): ``affine`` (z' = z + α·H(z)) or
        ``direction`` (z' = z + α·n).
    uses_classifier : bool
        Training reads the latent classifier F and the correlations γ.
    uses_lambda_pres : bool
        Training reads an edit definition's ``lambda_pres`` (changing it reruns these methods alone).
    uses_weight_attributes : bool
        Training reads ``labels.weight_attributes`` (LW's balanced weights, when ``edits.<options>.weighting``).
    uses_generator : bool
        Training reads the world's generator (GANSpace samples its mapping network, SeFa factorises its weights):
        the job receives the generator checkpoint and :class:`~latentedit.edits.train.EditJob` its module.
    in_wstar : bool
        The edit lives in W* (:mod:`latentedit.wstar`): training reads the trained T and stores a copy of it.
    fixed : dict
        Options this method sets whatever its section says (``lw_nopres``: λ = 0 and no attributes in the transport
        cost, so it reads no classifier; ``lw_paper``: :data:`PAPER_LW`,
        whatever ``edits.lw`` and the definitions' ``lambda_pres`` say; ``lt_core``: LT(*)).
    sets_direction_step : int or None
        Rank among the methods whose mean edit norm sets a direction's step α in the latent summary
        (:func:`latentedit.edits.evaluate.summarize_edits`; 0 first); None: not a reference.
    history_columns : tuple of str
        The training-history columns drawn in ``curves.png``.
    """

    name: str
    label: str
    trainer: str
    options: str
    edit_type: str
    uses_classifier: bool = False
    uses_lambda_pres: bool = False
    uses_weight_attributes: bool = False
    uses_generator: bool = False
    in_wstar: bool = False
    fixed: dict = field(default_factory=dict)
    sets_direction_step: int | None = None
    history_columns: tuple[str, ...] = ()

    def __post_init__(self):
        if self.edit_type not in EDIT_TYPES:
            raise ValueError(f"method {self.name}: edit_type must be one of {EDIT_TYPES}, got {self.edit_type!r}")


EDIT_TYPES = ("affine", "direction")

_LW_CURVES = ("train_wasserstein", "val_wasserstein", "train_preservation", "val_preservation", "train_edit_loss",
              "val_edit_loss")
_LT_CURVES = ("train_classification", "val_classification", "train_preservation", "val_preservation",
              "train_regularisation", "val_regularisation", "train_total", "val_total", "val_success")
_IFG_CURVES = ("train_accuracy", "val_accuracy")
_COMPONENT_CURVES = ("score", "runner_up_score")  # one row: the assigned component's score and the next best's

# The paper's LW where the default deviates from it, or may (latentedit.edits.lw: target_reach, pres_mode,
# transport_attributes): the balanced S_ε with the cost ½‖x − y‖² and the OT L_pres between the attribute clouds, at
# the λ = 1 every edit of the paper's digits Table 2 was measured with here (README "Relax only the targets",
# "Per-code preservation with relaxed targets").
PAPER_LW = {"target_reach": None, "pres_mode": "distribution", "lambda_pres": 1.0, "transport_attributes": 0.0}

METHODS: dict[str, Method] = {m.name: m for m in [
    Method("lw", "LW", "latentedit.edits.lw", "lw", "affine", uses_classifier=True, uses_lambda_pres=True,
           uses_weight_attributes=True, sets_direction_step=0, history_columns=_LW_CURVES),
    Method("lw_nopres", "LW (no L_pres)", "latentedit.edits.lw", "lw", "affine", uses_weight_attributes=True,
           fixed={"lambda_pres": 0.0, "transport_attributes": 0.0}, sets_direction_step=1,
           history_columns=_LW_CURVES),
    Method("lt", "LT", "latentedit.edits.lt", "lt", "affine", uses_classifier=True, history_columns=_LT_CURVES),
    Method("lt_core", "LT(*)", "latentedit.edits.lt", "lt", "affine", uses_classifier=True, fixed={"core": True},
           history_columns=_LT_CURVES),
    Method("ifg", "InterFaceGAN", "latentedit.edits.interfacegan", "ifg", "direction", history_columns=_IFG_CURVES),
    Method("lw_wstar", "LW in W*", "latentedit.edits.lw", "lw", "affine", uses_classifier=True,
           uses_lambda_pres=True, uses_weight_attributes=True, in_wstar=True, history_columns=_LW_CURVES),
    Method("ifg_wstar", "InterFaceGAN in W*", "latentedit.edits.interfacegan", "ifg", "direction", in_wstar=True,
           history_columns=_IFG_CURVES),
    Method("ganspace", "GANSpace", "latentedit.edits.ganspace", "ganspace", "direction", uses_classifier=True,
           uses_generator=True, history_columns=_COMPONENT_CURVES),
    Method("sefa", "SeFa", "latentedit.edits.sefa", "sefa", "direction", uses_classifier=True, uses_generator=True,
           history_columns=_COMPONENT_CURVES),
    Method("lw_paper", "LW (paper)", "latentedit.edits.lw", "lw", "affine", uses_classifier=True,
           uses_weight_attributes=True, fixed=PAPER_LW, history_columns=_LW_CURVES),
]}


# The method `latentedit edit` and `latentedit.load_run(...).edit()` use when none is named: the paper's own.
DEFAULT_METHOD = "lw"


def get_method(name: str) -> Method:
    """The registry entry of ``name``; a ValueError lists the known methods."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown edit method {name!r} (known: {', '.join(METHODS)})") from None


def method_label(name: str) -> str:
    """The figure label of a method (its name when it is not registered, e.g. a table from an older run)."""
    return METHODS[name].label if name in METHODS else name


def direction_step_references() -> list[str]:
    """Methods whose mean edit norm sets a direction's α in the latent summary, in order of preference."""
    refs = [m for m in METHODS.values() if m.sets_direction_step is not None]
    return [m.name for m in sorted(refs, key=lambda m: m.sets_direction_step)]
