# Helpers shared by every stage file: config checks beyond the schema, input functions, path builders.
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir))
)  # the latentedit package of this checkout

from latentedit.data.celebahq import CELEBA_ATTRIBUTES
from latentedit.data.digits import DigitsConfig, attribute_names

# digits | faces: the {world} wildcard of every shared rule takes this value only.
WORLD = config["world"]

# Methods that read the latent classifier F and the correlations γ (see latentedit.edits.train).
EDIT_METHODS_WITH_CLASSIFIER = ["lw", "lt", "lt_core", "lw_wstar"]
# Config section of each method's options: lw/lw_nopres/lw_wstar share edits.lw, lt/lt_core edits.lt, ifg/ifg_wstar
# edits.ifg.
EDIT_OPTIONS_SECTION = dict(
    lw="lw",
    lw_nopres="lw",
    lt="lt",
    lt_core="lt",
    ifg="ifg",
    lw_wstar="lw",
    ifg_wstar="ifg",
)
# Methods that edit inside W* (rules/wstar.smk): their training jobs read the W* model.
WSTAR_METHODS = ["lw_wstar", "ifg_wstar"]
# Methods that read an edit definition's lambda_pres.
EDIT_METHODS_WITH_LAMBDA_PRES = ["lw", "lw_wstar"]


# method/edit match the configured methods and definitions only (an unconfigured path has no rule).
wildcard_constraints:
    world=WORLD,
    variant="dls|nodls",
    method="|".join(config["edits"]["methods"]),
    edit="|".join(config["edits"]["definitions"]),


def check_config(cfg):
    """Semantic checks the schema cannot express; fail before any job runs, naming the key."""
    if cfg["world"] == "digits":
        try:
            DigitsConfig(
                **{
                    **cfg["digits"],
                    "source_fractions": tuple(cfg["digits"]["source_fractions"]),
                }
            )
        except ValueError as e:
            raise ValueError(f"config error: {e}") from None
    else:
        if "digits" in cfg:
            raise ValueError(
                "config error: world is faces but the digits sections of config.yaml are present too: "
                "--configfile extends config.yaml (edits.definitions would mix both worlds); add "
                "--replace-workflow-config, e.g. snakemake --configfile configs/faces.yaml --replace-workflow-config"
            )
        check_faces_files(cfg["faces"])
    check_edit_config(cfg)


# The faces world's user-supplied files: config key → what it must be.
FACES_FILES = dict(
    celebahq_images="dir",
    celebahq_attributes="file",
    ffhq_images="dir",
    psp_checkpoint="file",
    generator_checkpoint="file",
    arcface="file",
)


def check_faces_files(faces):
    """Every configured faces file exists. A dry run (-n) only warns, so that the DAG of a config with placeholder
    paths can be inspected; any other run fails here, before any job, naming the key."""
    for key, kind in FACES_FILES.items():
        path = faces[key]
        ok = path is None or (
            Path(path).is_dir() if kind == "dir" else Path(path).is_file()
        )
        if ok:
            continue
        msg = f"config error: faces.{key}: {path!r} is not an existing {'folder' if kind == 'dir' else 'file'}"
        if not is_dry_run():
            raise ValueError(msg)
        print(f"warning (dry run): {msg}", file=sys.stderr)


def is_dry_run():
    """Whether Snakemake was asked for a dry run (-n/--dry-run). Snakemake chooses its dry-run executor after it has
    read the workflow, so the command line is the only witness at parse time."""
    for arg in sys.argv[1:]:
        if arg in ("--dry-run", "--dryrun", "--dry_run"):
            return True
        if (
            arg.startswith("-")
            and not arg.startswith("--")
            and arg[1:].isalpha()
            and "n" in arg[1:]
        ):
            return True
    return False


def faces_file(key):
    """The configured faces file as an input (no input when unset, or missing in a dry run)."""
    path = config["faces"][key]
    return path if path is not None and Path(path).exists() else []


def faces_options(*keys):
    """The listed faces.* options (keys sorted), for a faces rule's params."""
    return sorted_keys({key: config["faces"][key] for key in keys})


def world_attribute_names(cfg):
    if cfg["world"] == "faces":
        return list(CELEBA_ATTRIBUTES)
    return attribute_names(cfg["digits"]["max_digits"])


def check_edit_config(cfg):
    """Every attribute the labels/edits sections name exists in the world; definitions are consistent.

    The digits attributes are count_1..count_<max_digits> and has_0..has_9 (latentedit.data.digits), the faces
    attributes CelebA's 40 (latentedit.data.celebahq). Mirrors latentedit.edits.train.check_definition, without
    importing torch at parse time.
    """
    names = world_attribute_names(cfg)
    if cfg["world"] == "faces":
        known = "the faces world has CelebA's 40 attributes: " + ", ".join(names)
    else:
        known = f"the digits world with max_digits={cfg['digits']['max_digits']} has {', '.join(names)}"
    for attr in cfg["labels"]["weight_attributes"]:
        if attr not in names:
            raise ValueError(
                f"config error: labels.weight_attributes: unknown attribute {attr!r} ({known})"
            )
    for edit, d in cfg["edits"]["definitions"].items():
        where = f"edits.definitions.{edit}"
        for side in ("source", "target"):
            for attr in d[side]:
                if attr not in names:
                    raise ValueError(
                        f"config error: {where}.{side}: unknown attribute {attr!r} ({known})"
                    )
        k = d["attribute"]
        if k not in names:
            raise ValueError(
                f"config error: {where}.attribute: unknown attribute {k!r} ({known})"
            )
        if k not in d["target"]:
            raise ValueError(
                f"config error: {where}.attribute: {k!r} must be one of the target's "
                f"attributes {sorted(d['target'])}"
            )
        if d["source"].get(k, 1 - d["target"][k]) == d["target"][k]:
            raise ValueError(
                f"config error: {where}: source and target both require "
                f"{k}={d['target'][k]}, so there is nothing to edit"
            )


check_config(config)

# Library modules a stage's script imports are listed as inputs, so that a code change reruns that stage
# (Snakemake tracks the script file itself, not what it imports).
LIB = str(Path(workflow.basedir) / "latentedit")
CORE_CODE = [f"{LIB}/io/h5.py", f"{LIB}/io/atomic.py", f"{LIB}/io/checkpoints.py"]


def sorted_keys(value):
    """A copy with every mapping's keys sorted: params compare by repr, so re-saving the config with its keys in
    another order must not look like a change."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def sorted_config(dpath):
    """The config slice at ``dpath`` ("a/b"), keys sorted (see sorted_keys)."""
    return sorted_keys(lookup(dpath=dpath, within=config))


def results_config_hash():
    """Provenance hash of the results: the whole config except the figure options (plots.*), key order ignored."""
    from latentedit.io.provenance import config_hash

    return config_hash({k: v for k, v in config.items() if k != "plots"})


def generator_checkpoint(wildcards=None):
    """The DLSGAN checkpoint the digits pipeline uses: trained here, or the shipped one."""
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


def generator_inputs(wildcards):
    """The generator a render job runs: digits the DLSGAN, faces the StyleGAN2 (its own checkpoint, or the pSp
    checkpoint's decoder)."""
    if wildcards.world == "digits":
        return {"checkpoint": generator_checkpoint()}
    key = (
        "generator_checkpoint"
        if config["faces"]["generator_checkpoint"]
        else "psp_checkpoint"
    )
    return {"checkpoint": faces_file(key)}


def judge_inputs(wildcards):
    """What scores rendered images: digits the image oracle; faces the attribute classifiers and ArcFace."""
    if wildcards.world == "digits":
        return {"oracle": "results/digits/oracle/model.pt"}
    return {"oracle": "results/faces/oracle/model.pt", "arcface": faces_file("arcface")}


def world_render_options(wildcards):
    """faces: the stored render size and the generator precision; digits: none."""
    if wildcards.world == "digits":
        return {}
    return faces_options("render_size", "precision")


def world_judge_options(wildcards):
    """faces: the crop given to ArcFace; digits: none."""
    if wildcards.world == "digits":
        return {}
    return faces_options("identity_crop")


def stage_metrics_inputs(wildcards):
    """Per-stage quality files that go into the results table, besides the latent classifiers'."""
    stages = {
        "inversion_quality": f"results/{wildcards.world}/projection/quality.json",
        "oracle_metrics": f"results/{wildcards.world}/oracle/metrics.json",
    }
    if wildcards.world == "digits":
        stages["dlsgan_quality"] = "results/digits/dlsgan/quality.json"
    return stages


def edit_definition(wildcards):
    """The job's edit definition; lambda_pres only for methods lw and lw_wstar (the only ones that read it), so that
    changing one edit's lambda_pres reruns that edit's lw (and lw_wstar) jobs alone."""
    d = config["edits"]["definitions"][wildcards.edit]
    return sorted_keys(
        {
            key: v
            for key, v in d.items()
            if key != "lambda_pres" or wildcards.method in EDIT_METHODS_WITH_LAMBDA_PRES
        }
    )


def edit_selection(wildcards):
    """What rendering and metrics read of an edit definition: source, target, attribute (not lambda_pres, which
    only matters through the trained model)."""
    d = config["edits"]["definitions"][wildcards.edit]
    return sorted_keys({key: d[key] for key in ("source", "target", "attribute")})


def edit_options(wildcards):
    """The options of the job's method family (lw and lw_nopres share edits.lw, lt and lt_core edits.lt).
    edits.ifg.alpha only sets the evaluation step, so the ifg training jobs do not receive it.
    """
    opts = config["edits"][EDIT_OPTIONS_SECTION[wildcards.method]]
    return sorted_keys({key: v for key, v in opts.items() if key != "alpha"})


def edit_weight_attributes(wildcards):
    """labels.weight_attributes for the LW jobs that use balanced weights; [] for every other job."""
    uses = (
        wildcards.method in ("lw", "lw_nopres", "lw_wstar")
        and config["edits"]["lw"]["weighting"]
    )
    return list(config["labels"]["weight_attributes"]) if uses else []


def edit_labels_inputs(wildcards):
    """Latent classifier and correlations, for the methods that read them (lw, lt, lt_core, lw_wstar), and the W*
    model for the methods that edit inside W* (lw_wstar, ifg_wstar)."""
    inputs = {}
    if wildcards.method in EDIT_METHODS_WITH_CLASSIFIER:
        inputs["classifiers"] = f"results/{wildcards.world}/labels/classifiers.pt"
        inputs["correlations"] = f"results/{wildcards.world}/labels/correlations.csv"
    if wildcards.method in WSTAR_METHODS:
        inputs["wstar"] = f"results/{wildcards.world}/wstar/model.pt"
    return inputs


def edit_code(wildcards):
    """Library modules a (method, edit) job runs: editing lt.py reruns the lt/lt_core jobs only."""
    modules = {
        "lw": ["lw.py", "affine.py", "sinkhorn.py", "weights.py"],
        "lt": ["lt.py", "affine.py"],
        "ifg": ["interfacegan.py"],
    }[EDIT_OPTIONS_SECTION[wildcards.method]]
    wstar = [f"{LIB}/wstar/realnvp.py"] if wildcards.method in WSTAR_METHODS else []
    return [f"{LIB}/edits/train.py", *(f"{LIB}/edits/{m}" for m in modules), *wstar]


# Library modules of the W* stage (rules/wstar.smk).
WSTAR_CODE = [
    f"{LIB}/wstar/realnvp.py",
    f"{LIB}/wstar/losses.py",
    f"{LIB}/wstar/train.py",
]


def wstar_enabled():
    """Whether the W* stage is part of the run: a configured method edits inside W*."""
    return any(m in WSTAR_METHODS for m in config["edits"]["methods"])


def wstar_train_options(wildcards=None):
    """wstar.* without the metrics sub-section (changing a metrics option does not retrain T)."""
    return sorted_keys({k: v for k, v in config["wstar"].items() if k != "metrics"})


def wstar_metrics_inputs(wildcards):
    """The W* Table-1 rows for the results table, when the W* stage is part of the run."""
    if not wstar_enabled():
        return {}
    return {"wstar_metrics": f"results/{wildcards.world}/wstar/metrics.parquet"}


def edit_models(wildcards=None):
    """Every configured (method, edit) model."""
    return expand(
        "results/{world}/edits/{method}/{edit}/model.pt",
        world=WORLD,
        method=config["edits"]["methods"],
        edit=list(config["edits"]["definitions"]),
    )


def final_outputs():
    """The default target: every stage's deliverables, the results table, summary and figures."""
    common = [
        "latents.h5",
        "projection/quality.json",
        "projection/reconstructions.png",
        "oracle/metrics.json",
        "edits/latent_target_change.md",
        "metrics.parquet",
        "summary.md",
        "figures/preservation_vs_change.png",
        "figures/latent_vs_image.png",
        *expand("figures/grid_{edit}.png", edit=list(config["edits"]["definitions"])),
    ]
    if wstar_enabled():
        common += ["wstar/table.md", "wstar/curves.png"]
    if WORLD == "digits":
        common += [
            "images.h5",
            "dlsgan/quality.json",
            "dlsgan/curves.png",
            "dlsgan/samples.png",
        ]
    return expand("results/{world}/{path}", world=WORLD, path=common)
