"""Checks of a run's configuration that its JSON schema cannot express, run while Snakemake parses the workflow.

``schemas/config.schema.yaml`` checks keys, types and ranges; :func:`check_config` checks what depends on the
world and on other keys — the digits layout, the shipped oracle against it, the faces files, the projection space
against the generator, the attributes every edit definition names, the edit methods and their W+ ``layers`` — and
fails before any job runs with a message that starts ``config error:`` and names the key.

Only light modules are imported here (no torch): the workflow calls this at parse time. The one exception is a W/W+
projection (``projection.space`` w or wplus) on the shipped DLSGAN checkpoint, whose architecture only the file
says: torch is imported then to read its spec.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from latentedit.edits.definitions import check_definition
from latentedit.edits.methods import get_method

CHECKOUT = Path(__file__).resolve().parents[1]  # the workflow's base directory: dlsgan.checkpoint is relative to it
# DLSGANConfig.arch's default (latentedit.dlsgan.train imports torch, so it is repeated here; a test checks both agree)
DLSGAN_DEFAULT_ARCH = "stylegan2"

# The faces world's user-supplied files: config key → what it must be.
FACES_FILES = {"celebahq_images": "dir", "celebahq_attributes": "file", "ffhq_images": "dir",
               "psp_checkpoint": "file", "generator_checkpoint": "file", "arcface": "file",
               "inception_weights": "file", "vgg16_weights": "file"}


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key."""

    def __init__(self, message: str):
        super().__init__(f"config error: {message}")


def world_attribute_names(cfg: Mapping) -> list[str]:
    """The attributes of the configured world: CelebA's 40 (faces) or the digits' counts and presences."""
    if cfg["world"] == "faces":
        from latentedit.data.celebahq import CELEBA_ATTRIBUTES

        return list(CELEBA_ATTRIBUTES)
    from latentedit.data.digits import attribute_names

    return attribute_names(cfg["digits"]["max_digits"])


def check_config(cfg: Mapping, dry_run: bool = False, checkout: str | Path | None = None) -> list[str]:
    """Raise :class:`ConfigError` when ``cfg`` (already schema-valid) cannot run; return warnings.

    Parameters
    ----------
    cfg : mapping
        The workflow's config.
    dry_run : bool
        A dry run (``-n``) only warns about missing faces files, so that the DAG of a config with placeholder paths
        can be inspected.
    checkout : path-like, optional
        The workflow's base directory, which a relative ``dlsgan.checkpoint`` is relative to (default: this
        package's checkout).
    """
    warnings: list[str] = []
    if cfg["world"] == "digits":
        from latentedit.data.digits import DigitsConfig

        try:
            DigitsConfig(**{**cfg["digits"], "source_fractions": tuple(cfg["digits"]["source_fractions"])})
        except ValueError as e:
            raise ConfigError(str(e)) from None
        check_dlsgan_train(cfg["dlsgan"]["train"])
        check_projection(cfg, checkout)
        check_oracle(cfg, checkout)
        check_projection_encoder(cfg, checkout)
    else:
        if "digits" in cfg:
            raise ConfigError(
                "world is faces but the digits sections of config.yaml are present too: --configfile extends "
                "config.yaml (edits.definitions would mix both worlds); add --replace-workflow-config, e.g. "
                "snakemake --configfile configs/faces.yaml --replace-workflow-config")
        warnings += check_faces_files(cfg["faces"], dry_run)
    check_edits(cfg)
    check_wstar(cfg)
    return warnings


def check_faces_files(faces: Mapping, dry_run: bool = False) -> list[str]:
    """Every configured faces file exists (``null`` = not used). A dry run returns the problems as warnings."""
    problems = []
    for key, kind in FACES_FILES.items():
        path = faces.get(key)  # optional keys (vgg16_weights) may be absent
        if path is None or (Path(path).is_dir() if kind == "dir" else Path(path).is_file()):
            continue
        problems.append(f"faces.{key}: {path!r} is not an existing {'folder' if kind == 'dir' else 'file'}")
    if problems and not dry_run:
        raise ConfigError(problems[0])
    return [f"config error: {p}" for p in problems]


def projection_space(cfg: Mapping) -> str:
    """The space of the world's latent store: faces wplus (pSp), digits ``projection.space`` (its library default
    when the config omits it)."""
    if cfg["world"] == "faces":
        return "wplus"
    from latentedit.projection.options import RefineConfig

    try:
        return RefineConfig(**cfg["projection"]).space
    except (TypeError, ValueError) as e:
        raise ConfigError(f"projection: {e}") from None


def check_dlsgan_train(train: Mapping) -> None:
    """``dlsgan.train.style_dim`` is the StyleGAN2's style dimension: the DCGAN has none."""
    arch = train.get("arch", DLSGAN_DEFAULT_ARCH)
    if train.get("style_dim") is not None and arch != "stylegan2":
        raise ConfigError(f"dlsgan.train.style_dim: only a stylegan2 generator has a style dimension; "
                          f"dlsgan.train.arch is {arch} (set style_dim: null)")


def generator_arch(cfg: Mapping, checkout: str | Path | None = None) -> str:
    """The digits DLSGAN generator's architecture (``dcgan`` / ``stylegan2``): ``dlsgan.train.arch`` when it is
    trained here (``dlsgan.retrain``), else the one the ``dlsgan.checkpoint`` file records: its RECIPE.json's when
    that recipe describes this very file (SHA-256), otherwise its spec (torch is imported to read it; a missing or
    unreadable file fails naming the key)."""
    if cfg["dlsgan"]["retrain"]:
        return str(cfg["dlsgan"]["train"].get("arch", DLSGAN_DEFAULT_ARCH))
    path = Path(checkout or CHECKOUT) / cfg["dlsgan"]["checkpoint"]
    recorded = _recipe_arch(path)
    if recorded is not None:
        return recorded
    from latentedit.io.checkpoints import CheckpointError, load_checkpoint

    try:
        ck = load_checkpoint(path, expect_kind="dlsgan", require=("spec",))
    except CheckpointError as e:
        raise ConfigError(f"dlsgan.checkpoint: {e}") from None
    spec = ck["spec"].get("generator") if isinstance(ck["spec"], Mapping) else None
    return str(spec.get("arch", "dcgan")) if isinstance(spec, Mapping) else "dcgan"


def _recipe_arch(checkpoint: Path) -> str | None:
    """The ``arch`` of the RECIPE.json beside a shipped generator when the recipe records one and describes this
    very file (its SHA-256), else None. It keeps torch out of the workflow's parse (a dry run: 4.6 → ≈ 2 s of CPU)."""
    from latentedit.io.provenance import file_hash
    from latentedit.shipped import recipe_path

    try:
        recipe = json.loads(recipe_path(checkpoint).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("arch"), str) or not checkpoint.is_file():
        return None
    return recipe["arch"] if file_hash(checkpoint) == recipe.get("checkpoint_sha256_16") else None


def check_projection(cfg: Mapping, checkout: str | Path | None = None) -> None:
    """``projection.space`` w or wplus needs a generator with a mapping network: the DLSGAN StyleGAN2
    (:func:`generator_arch`); the DCGAN reads z codes only."""
    space = projection_space(cfg)
    if space == "z":
        return
    arch = generator_arch(cfg, checkout)
    if arch != "stylegan2":
        source = ("dlsgan.train.arch" if cfg["dlsgan"]["retrain"]
                  else f"the generator of dlsgan.checkpoint ({cfg['dlsgan']['checkpoint']})")
        raise ConfigError(f"projection.space: {space} codes need a StyleGAN2 DLSGAN generator (a mapping network); "
                          f"{source} is {arch}, which reads z codes only: set projection.space: z, or train the "
                          "StyleGAN2 (dlsgan.retrain: true, dlsgan.train.arch: stylegan2)")


def shipped_recipe(key: str, checkpoint: str, kind: str, retrain: str,
                   checkout: str | Path | None = None) -> dict:
    """The recipe of the shipped ``kind`` (``latentedit.shipped``) at ``checkpoint`` (relative to the checkout);
    a missing file or recipe fails naming the config ``key`` and saying what ``retrain`` would do instead."""
    from latentedit.shipped import read_recipe

    path = Path(checkout or CHECKOUT) / checkpoint
    if not path.is_file():
        raise ConfigError(f"{key}: {str(path)!r} does not exist ({retrain})")
    try:
        return read_recipe(path, kind)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None


def check_oracle(cfg: Mapping, checkout: str | Path | None = None) -> None:
    """Without ``oracle.retrain`` the shipped oracle judges: ``oracle.checkpoint`` and its RECIPE.json exist, and the
    recipe's digits config has the configured handwriting split and layout (``latentedit.shipped``)."""
    if cfg["oracle"]["retrain"]:
        return
    from latentedit.shipped import data_mismatches

    recipe = shipped_recipe("oracle.checkpoint", cfg["oracle"]["checkpoint"], "oracle",
                            "set oracle.retrain: true to train the oracle here", checkout)
    mismatches = data_mismatches(recipe, cfg["digits"])
    if mismatches:
        raise ConfigError(f"{mismatches[0]}; the shipped oracle ({cfg['oracle']['checkpoint']}) may only judge "
                          "images with its handwriting split and layout: set oracle.retrain: true to train one on "
                          "these images")


def check_projection_encoder(cfg: Mapping, checkout: str | Path | None = None) -> None:
    """Without ``projection.retrain`` the shipped refined encoder projects: ``projection.checkpoint`` and its recipe
    (the ``encoder`` entry of the RECIPE.json beside it) exist, it was refined against the configured shipped
    generator (SHA-256 of ``dlsgan.checkpoint``), on the configured handwriting split and layout, with the
    configured refinement options (``latentedit.shipped``)."""
    from latentedit.io.provenance import file_hash
    from latentedit.projection.options import RefineConfig
    from latentedit.shipped import data_mismatches, option_mismatches

    refine = RefineConfig(**cfg["projection"])  # schema-valid; projection_space already checked the values
    if refine.retrain:
        return
    retrain = "set projection.retrain: true to refine one here"
    if cfg["dlsgan"]["retrain"]:
        raise ConfigError("projection.retrain: the shipped encoder was refined against a shipped generator, and this "
                          f"run trains its own (dlsgan.retrain: true): {retrain}")
    recipe = shipped_recipe("projection.checkpoint", refine.checkpoint, "encoder", retrain, checkout)
    generator = Path(checkout or CHECKOUT) / cfg["dlsgan"]["checkpoint"]
    found = file_hash(generator) if generator.is_file() else None  # missing: the rule's input names it
    refined_on = recipe.get("generator", {}).get("sha256_16")
    if found is not None and found != refined_on:
        raise ConfigError(f"dlsgan.checkpoint: {cfg['dlsgan']['checkpoint']} (SHA-256 {found}) is not "
                          f"the generator the shipped encoder {refine.checkpoint} was refined against ({refined_on}): "
                          f"point projection.checkpoint at that generator's encoder, or {retrain}")
    mismatches = (data_mismatches(recipe, cfg["digits"], "encoder")
                  + option_mismatches(recipe["config"]["projection"], refine.encoder_options(), "projection"))
    if mismatches:
        raise ConfigError(f"{mismatches[0]}; the shipped encoder ({refine.checkpoint}) is that training's result: "
                          f"{retrain}")


# Edit options that only W+ codes have (the value that turns each off): the edited layers, and LW's one map over them
WPLUS_ONLY_OPTIONS = {"layers": "null", "couple_layers": "false"}


def check_edits(cfg: Mapping) -> None:
    """The methods are registered (with their sections), every attribute ``labels`` and ``edits`` name exists in the
    world, and a method's W+ ``layers`` (GANSpace, SeFa, LW, LT) and LW's ``couple_layers`` are set only for W+
    codes — faces, or digits with ``projection.space: wplus`` — and the layers are layer indices of the digits
    generator (L = 2·log2(canvas) − 2)."""
    space = projection_space(cfg)
    for method in cfg["edits"]["methods"]:
        try:
            entry = get_method(method)
        except ValueError as e:
            raise ConfigError(f"edits.methods: {e}") from None
        if entry.options not in cfg["edits"]:
            raise ConfigError(f"edits.{entry.options}: missing, and method {method} reads it")
        options = cfg["edits"][entry.options]
        for key, off in WPLUS_ONLY_OPTIONS.items():
            if options.get(key) and space != "wplus":
                raise ConfigError(f"edits.{entry.options}.{key}: the digits codes are {space} codes "
                                  f"(projection.space), flat, with no W+ layers; set it to {off}, or "
                                  "projection.space: wplus")
        layers = options.get("layers")
        if layers is not None and cfg["world"] == "digits":
            n_latent = 2 * int(math.log2(cfg["digits"]["canvas"])) - 2
            bad = [i for i in layers if not 0 <= int(i) < n_latent]
            if bad:
                raise ConfigError(f"edits.{entry.options}.layers: {bad} are not W+ layers of the digits generator "
                                  f"(0 … {n_latent - 1} at a {cfg['digits']['canvas']}-pixel canvas)")
    names = world_attribute_names(cfg)
    for attr in cfg["labels"]["weight_attributes"]:
        if attr not in names:
            raise ConfigError(f"labels.weight_attributes: unknown attribute {attr!r} (known: {', '.join(names)})")
    for edit, definition in cfg["edits"]["definitions"].items():
        try:
            check_definition(definition, names, f"edits.definitions.{edit}")
        except ValueError as e:
            raise ConfigError(str(e)) from None


def check_wstar(cfg: Mapping) -> None:
    """``wstar.perceptual`` fits the world (``oracle``: digits only; ``vgg16``: faces only, and a configured
    ``faces.vgg16_weights`` when a W* method runs); ``wstar.lambda_id > 0`` needs a differentiable φ (not the faces
    judge's ArcFace, which onnxruntime runs without gradients)."""
    from latentedit.wstar.perceptual import configured_perceptual

    kind, world = configured_perceptual(cfg), cfg["world"]
    if kind == "oracle" and world != "digits":
        raise ConfigError("wstar.perceptual: oracle is the digits oracle's per-slot features; on faces use vgg16 "
                          "(VGG16 features, the W* paper's distance) or judge (ArcFace embeddings)")
    if kind == "vgg16" and world != "faces":
        raise ConfigError("wstar.perceptual: vgg16 reads an ImageNet VGG16 weights file (faces.vgg16_weights), "
                          "which only the faces world configures; on digits use oracle (default) or judge")
    wstar = cfg.get("wstar") or {}
    if kind == "judge" and world == "faces" and float(wstar.get("lambda_id", 0.0)) > 0:
        raise ConfigError("wstar.lambda_id > 0 with wstar.perceptual: judge on faces: L_ID back-propagates through "
                          "φ, and ArcFace runs in onnxruntime without gradients; use wstar.perceptual: vgg16 or "
                          "wstar.lambda_id: 0")
    in_wstar = any(get_method(m).in_wstar for m in cfg["edits"]["methods"])
    if kind == "vgg16" and in_wstar and cfg["faces"].get("vgg16_weights") is None:
        raise ConfigError("faces.vgg16_weights: not set, and wstar.perceptual is vgg16 (the faces default) for the "
                          "W* methods in edits.methods: give torchvision's vgg16-397923af.pth (never downloaded)")


def dry_run_requested(argv: Sequence[str]) -> bool:
    """Whether a Snakemake command line asks for a dry run (``-n``, ``--dry-run``, or ``-n`` among short flags such
    as ``-np``). Snakemake chooses its dry-run executor after it has read the workflow, so at parse time the command
    line is the only witness."""
    for arg in argv[1:]:
        if arg in ("--dry-run", "--dryrun", "--dry_run"):
            return True
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha() and "n" in arg[1:]:
            return True
    return False
