# Params: each job receives the config slice it reads and nothing else, keys sorted (params compare by repr), so a
# config change reruns exactly the jobs that read the changed key.


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


def projection_encoder_config():
    """projection.* without the options only the projection step reads (optimisation, subset) and where the encoder
    comes from (retrain, checkpoint), keys sorted: the encoder's training does not rerun when they change.
    """
    from latentedit.projection.options import PROJECTION_ONLY_KEYS, SHIPPING_KEYS

    return sorted_keys(
        {
            k: v
            for k, v in config["projection"].items()
            if k not in PROJECTION_ONLY_KEYS + SHIPPING_KEYS
        }
    )


def results_config_hash():
    """Provenance hash of the results: the whole config except the figure options (plots.*), key order ignored."""
    from latentedit.io.provenance import config_hash

    return config_hash({k: v for k, v in config.items() if k != "plots"})


def faces_options(*keys):
    """The listed faces.* options (keys sorted), for a faces rule's params."""
    return sorted_keys({key: config["faces"][key] for key in keys})


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


def edit_definition(wildcards):
    """The job's edit definition; lambda_pres only for the methods that read it (registry: uses_lambda_pres), so
    that changing one edit's lambda_pres reruns that edit's lw (and lw_wstar) jobs alone.
    """
    d = config["edits"]["definitions"][wildcards.edit]
    reads_lambda = get_method(wildcards.method).uses_lambda_pres
    return sorted_keys(
        {k: v for k, v in d.items() if k != "lambda_pres" or reads_lambda}
    )


def edit_selection(wildcards):
    """What rendering and metrics read of an edit definition: source, target, attribute (not lambda_pres, which
    only matters through the trained model)."""
    d = config["edits"]["definitions"][wildcards.edit]
    return sorted_keys({key: d[key] for key in ("source", "target", "attribute")})


def edit_options(wildcards):
    """The options section of the job's method (registry: Method.options; lw and lw_nopres share edits.lw), with
    the job's seed (the {seed} wildcard, one of edits.seeds). edits.ifg.alpha only sets the evaluation step, and an
    option the method fixes (Method.fixed: lw_paper's target_reach and pres_mode) does not come from the section, so
    the training jobs do not receive them: changing one reruns no job of such a method.
    """
    method = get_method(wildcards.method)
    opts = config["edits"][method.options]
    opts = {
        key: v for key, v in opts.items() if key != "alpha" and key not in method.fixed
    }
    return sorted_keys({**opts, "seed": int(wildcards.seed)})


def edit_weight_attributes(wildcards):
    """labels.weight_attributes for the jobs of methods that read it when their section's weighting is on; [] for
    every other job."""
    method = get_method(wildcards.method)
    uses = (
        method.uses_weight_attributes and config["edits"][method.options]["weighting"]
    )
    return list(config["labels"]["weight_attributes"]) if uses else []


def wstar_section():
    """wstar.* as configured (absent: every option takes latentedit.wstar's defaults)."""
    return config.get("wstar", {})


def wstar_train_options(wildcards=None):
    """wstar.* without the metrics sub-section (changing a metrics option does not retrain T)."""
    return sorted_keys({k: v for k, v in wstar_section().items() if k != "metrics"})


def wstar_metrics_options(wildcards=None):
    """wstar.metrics.*, as configured."""
    return sorted_keys(wstar_section().get("metrics", {}))
