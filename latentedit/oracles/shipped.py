"""The shipped digits oracle: a judge trained once by the workflow's own rule, so that a run does not retrain it.

The oracle is the digits world's judge: every edit, reconstruction and generator sample is scored by it. Training
it is the same work in every run (the rule is deterministic on CPU: nine runs on this machine, Z and W+ worlds, gave
one file), and on two cores it is ≈ 135 s on the critical path before any projection. So, like the DLSGAN generator
(``latentedit.dlsgan.ship``), it ships in ``checkpoints/digits_oracle/`` with a ``RECIPE.json`` that records the
command, the commit, the config it was trained with, its SHA-256, its training history and its test numbers. A run
uses it unless ``oracle.retrain`` is true, and then only when the config's images are ones it may judge.

Which images it may judge: the judge must not have seen the test split's handwriting. ``latentedit.data.digits``
splits scikit-learn's 1797 source digits into train/val/test before composing, by ``digits.seed`` and
``digits.source_fractions``; the layout keys (``canvas``, ``grid``, ``digit_size``, ``max_digits``) fix what the
network reads. Those six keys (:data:`ORACLE_DATA_KEYS`) must equal the recipe's. The image counts (``n_train``,
``n_val``, ``n_test``) may differ: they change how many images are composed from each split's digits, not which
digits a split holds.

Usage (after ``snakemake results/digits/oracle/model.pt`` with ``oracle.retrain: true``)::

    python -m latentedit.oracles.shipped --results results/digits/oracle --dest checkpoints/digits_oracle \
        --command "<the exact snakemake command used>"

This module imports no torch: the workflow reads recipes at parse time (``latentedit.config``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from latentedit import __version__
from latentedit.io.atomic import write_json
from latentedit.io.provenance import file_hash, git_commit

# digits.* keys a shipped oracle must have been trained with (module docstring)
ORACLE_DATA_KEYS = ("canvas", "grid", "digit_size", "max_digits", "source_fractions", "seed")
RECIPE = "RECIPE.json"


def recipe_path(checkpoint: str | Path) -> Path:
    """The recipe of a shipped oracle: ``RECIPE.json`` beside the checkpoint."""
    return Path(checkpoint).with_name(RECIPE)


def read_recipe(checkpoint: str | Path) -> dict:
    """The recipe beside ``checkpoint``; a missing or unreadable one raises ``ValueError`` naming the file."""
    path = recipe_path(checkpoint)
    try:
        recipe = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the shipped oracle's recipe ({e})") from None
    missing = [k for k in ("checkpoint_sha256_16", "config") if k not in recipe]
    if missing or "digits" not in recipe["config"]:
        raise ValueError(f"{path}: not an oracle recipe (missing {missing or ['config.digits']})")
    return recipe


def verify_checkpoint(checkpoint: str | Path, recipe: Mapping) -> None:
    """Raise ``ValueError`` naming the file when ``checkpoint`` is not the file its recipe describes (SHA-256)."""
    found = file_hash(checkpoint)
    if found != recipe["checkpoint_sha256_16"]:
        raise ValueError(f"{checkpoint}: SHA-256 {found} is not the {recipe['checkpoint_sha256_16']} its "
                         f"{RECIPE} records; restore the shipped file, or set oracle.retrain: true")


def data_mismatches(recipe: Mapping, digits: Mapping) -> list[str]:
    """``digits.<key>`` of :data:`ORACLE_DATA_KEYS` whose configured value differs from the recipe's, as
    "digits.seed: the oracle was trained on 0, the config has 3"."""
    trained = recipe["config"]["digits"]
    out = []
    for key in ORACLE_DATA_KEYS:
        a, b = trained.get(key), digits.get(key)
        if key == "source_fractions":
            same = a is not None and b is not None and len(a) == len(b) and all(
                abs(float(x) - float(y)) < 1e-9 for x, y in zip(a, b))
        else:
            same = a == b
        if not same:
            out.append(f"digits.{key}: the oracle was trained on {a!r}, the config has {b!r}")
    return out


def ship(results: Path, dest: Path, command: str) -> dict:
    """Copy ``results/model.pt`` to ``dest/oracle.pt`` and write ``dest/RECIPE.json`` from the training job's
    ``results/metrics.json`` (its options, the digits config it was given, its history and val/test numbers)."""
    metrics = json.loads((results / "metrics.json").read_text())
    if "shipped" in metrics or "digits" not in metrics:
        raise ValueError(f"{results / 'metrics.json'}: not written by rule train_oracle (oracle.retrain: true), so "
                         f"{results / 'model.pt'} is not an oracle trained here")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(results / "model.pt", dest / "oracle.pt")
    recipe = {
        "command": command,
        "config": {"digits": metrics["digits"], "oracle": {"train": metrics["options"]}},
        "git_commit": git_commit(),
        "library_version": __version__,
        "shipped": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint_sha256_16": file_hash(dest / "oracle.pt"),
        "val": metrics["val"],
        "test": metrics["test"],
        "history": metrics["history"],
    }
    write_json(dest / RECIPE, recipe)
    return recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results/digits/oracle"))
    ap.add_argument("--dest", type=Path, default=Path("checkpoints/digits_oracle"))
    ap.add_argument("--command", required=True, help="the exact command that trained the oracle")
    args = ap.parse_args()
    recipe = ship(args.results, args.dest, args.command)
    print(f"shipped {args.dest / 'oracle.pt'} ({recipe['checkpoint_sha256_16']})")


if __name__ == "__main__":
    main()
