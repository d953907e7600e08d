# Input functions: which files a job reads, by world and by method (the method registry, latentedit.edits.methods).


def faces_file(key):
    """The configured faces file as an input (no input when unset, or missing in a dry run)."""
    path = config["faces"][key]
    return path if path is not None and Path(path).exists() else []


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


def shipped_oracle_checkpoint():
    """The shipped digits oracle (oracle.checkpoint, relative to the checkout); config checks made sure it exists."""
    return str(Path(workflow.basedir) / config["oracle"]["checkpoint"])


def shipped_oracle_recipe():
    """The RECIPE.json beside the shipped digits oracle."""
    from latentedit.shipped import recipe_path

    return str(recipe_path(shipped_oracle_checkpoint()))


def projection_options():
    """The digits projection options (latentedit.projection.options.RefineConfig: the config's, defaults filled)."""
    from latentedit.projection.options import RefineConfig

    return RefineConfig(**config["projection"])


def shipped_encoder_checkpoint():
    """The shipped refined projection encoder (projection.checkpoint, relative to the checkout); config checks made
    sure it exists and fits the config."""
    return str(Path(workflow.basedir) / projection_options().checkpoint)


def shipped_encoder_recipe():
    """The RECIPE.json beside the shipped encoder (its ``encoder`` entry describes it)."""
    from latentedit.shipped import recipe_path

    return str(recipe_path(shipped_encoder_checkpoint()))


def judge_inputs(wildcards):
    """What scores rendered images: digits the image oracle; faces the attribute classifiers and ArcFace."""
    if wildcards.world == "digits":
        return {"oracle": "results/digits/oracle/model.pt"}
    return {"oracle": "results/faces/oracle/model.pt", "arcface": faces_file("arcface")}


def realism_inputs(wildcards):
    """What realism features read besides the judge: digits nothing (the oracle's features, from judge_inputs);
    faces the Inception-v3 weights."""
    if wildcards.world == "digits":
        return {}
    return {"inception": faces_file("inception_weights")}


def edit_labels_inputs(wildcards):
    """The latent classifier and correlations for a method that reads them, the W* model for a method in W*, the
    generator checkpoint for a method that reads the generator (registry: uses_generator).
    """
    method = get_method(wildcards.method)
    inputs = {}
    if method.uses_classifier:
        inputs["classifiers"] = f"results/{wildcards.world}/labels/classifiers.pt"
        inputs["correlations"] = f"results/{wildcards.world}/labels/correlations.csv"
    if method.in_wstar:
        inputs["wstar"] = f"results/{wildcards.world}/wstar/model.pt"
    if method.uses_generator:
        inputs["generator"] = generator_inputs(wildcards)["checkpoint"]
    return inputs


def edit_models(wildcards=None):
    """Every configured (method, edit) model of the first seed (the latent summary's)."""
    return expand(
        "results/{world}/edits/{method}/{edit}/seed{seed}/model.pt",
        world=WORLD,
        method=config["edits"]["methods"],
        edit=list(config["edits"]["definitions"]),
        seed=FIRST_SEED,
    )


def stage_metrics_inputs(wildcards):
    """Per-stage quality files that go into the results table, besides the latent classifiers'."""
    stages = {
        "inversion_quality": f"results/{wildcards.world}/projection/quality.json",
        "oracle_metrics": f"results/{wildcards.world}/oracle/metrics.json",
    }
    if wildcards.world == "digits":
        stages["dlsgan_quality"] = "results/digits/dlsgan/quality.json"
    return stages


def wstar_metrics_inputs(wildcards):
    """The W* Table-1 rows for the results table, when the W* stage is part of the run."""
    if not wstar_enabled():
        return {}
    return {"wstar_metrics": f"results/{wildcards.world}/wstar/metrics.parquet"}


def wstar_perceptual_inputs(wildcards):
    """What W*'s perceptual features φ read (wstar.perceptual; latentedit.wstar.perceptual): oracle and judge the
    world's judge; vgg16 the VGG16 weights (faces.vgg16_weights)."""
    from latentedit.wstar.perceptual import configured_perceptual

    if configured_perceptual(config) == "vgg16":
        return {"vgg16": faces_file("vgg16_weights")}
    return judge_inputs(wildcards)
