# Targets: what the default target `all` asks for.


def wstar_enabled():
    """Whether the W* stage is part of the run: a configured method edits inside W* (registry: in_wstar)."""
    return any(get_method(m).in_wstar for m in config["edits"]["methods"])


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
        "figures/realism.png",
        "figures/rescoring.png",
        *expand("figures/grid_{edit}.png", edit=list(config["edits"]["definitions"])),
        *expand("figures/curves_{edit}.png", edit=list(config["edits"]["definitions"])),
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
