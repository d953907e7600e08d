"""Image attribute oracles: the evaluation's "pretrained image attribute predictors"."""
