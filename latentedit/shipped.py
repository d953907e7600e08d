"""Checkpoints the workflow trains once and ships, so that a run does not retrain them: the digits oracle and the
digits projection encoder (the DLSGAN generator ships through ``latentedit.dlsgan.ship``).

Both are deterministic on CPU and the same work in every run, on the critical path before any projection: the oracle
(rule ``train_oracle``, ≈ 135 s of two cores; nine runs on this machine, Z and W+ worlds, gave one file) and the
refined encoder (rule ``refine_encoder``, ≈ 103 s in the Z world and ≈ 120 s in W+; four Z runs gave one file, two
W+ runs one file). Each ships beside a ``RECIPE.json`` recording the command, the commit, the config it was trained
with, its SHA-256 and its numbers. A run uses it unless ``<section>.retrain`` is true, and then only when the config
asks for what it is:

- **Which images.** A shipped network must not have seen the test split's handwriting. ``latentedit.data.digits``
  splits scikit-learn's 1797 source digits into train/val/test before composing, by ``digits.seed`` and
  ``digits.source_fractions``; the geometry keys (``canvas``, ``grid``, ``digit_size``, ``max_digits``) fix what the
  network reads. Those six keys (:data:`DATA_KEYS`) must equal the recipe's. The image counts (``n_train``,
  ``n_val``, ``n_test``) may differ: they change how many images are composed from each split's digits, not which
  digits a split holds. So may ``layout``: a ``reading_order`` image (n digits in the first n slots) is one the
  ``random`` law also draws.
- **Which training** (the encoder). Its refinement options (``projection.*`` but the per-image optimisation and the
  train subset, :data:`latentedit.projection.options.PROJECTION_ONLY_KEYS`) must equal the recipe's, and the
  generator it was refined against (``dlsgan.checkpoint``) must be the file whose SHA-256 the recipe records.

Usage, after the training rule ran with ``<section>.retrain: true``::

    python -m latentedit.shipped oracle --command "<the exact snakemake command used>"
    python -m latentedit.shipped encoder --dest checkpoints/digits --command "..."

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

# digits.* keys a shipped network must have been trained with (module docstring)
DATA_KEYS = ("canvas", "grid", "digit_size", "max_digits", "source_fractions", "seed")
RECIPE = "RECIPE.json"
# what ships: the training job's results folder, its model file, the shipped file's name, its retrain key
KINDS = {
    "oracle": {"results": "results/digits/oracle", "model": "model.pt", "metrics": "metrics.json",
               "shipped": "oracle.pt", "dest": "checkpoints/digits_oracle", "retrain": "oracle.retrain",
               "what": "the shipped oracle"},
    "encoder": {"results": "results/digits/projection", "model": "encoder.pt", "metrics": "refine.json",
                "shipped": "encoder.pt", "dest": "checkpoints/digits", "retrain": "projection.retrain",
                "what": "the shipped projection encoder"},
}


def recipe_path(checkpoint: str | Path) -> Path:
    """The recipe of a shipped checkpoint: ``RECIPE.json`` beside it."""
    return Path(checkpoint).with_name(RECIPE)


def read_recipe(checkpoint: str | Path, kind: str = "oracle") -> dict:
    """The recipe beside ``checkpoint``; a missing or unreadable one, or one of another kind, raises ``ValueError``
    naming the file. An encoder's recipe lives beside the DLSGAN's in the same folder, under ``"encoder"``."""
    path = recipe_path(checkpoint)
    try:
        recipe = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read {KINDS[kind]['what']}'s recipe ({e})") from None
    if kind == "encoder":
        recipe = recipe.get("encoder") if isinstance(recipe.get("encoder"), dict) else {}
    missing = [k for k in ("checkpoint_sha256_16", "config") if k not in recipe]
    if missing or "digits" not in recipe["config"]:
        raise ValueError(f"{path}: not a recipe of {KINDS[kind]['what']} (missing "
                         f"{missing or ['config.digits']}{' under encoder' if kind == 'encoder' else ''})")
    return recipe


def verify_checkpoint(checkpoint: str | Path, recipe: Mapping, kind: str = "oracle") -> None:
    """Raise ``ValueError`` naming the file when ``checkpoint`` is not the file its recipe describes (SHA-256)."""
    found = file_hash(checkpoint)
    if found != recipe["checkpoint_sha256_16"]:
        raise ValueError(f"{checkpoint}: SHA-256 {found} is not the {recipe['checkpoint_sha256_16']} its "
                         f"{RECIPE} records; restore the shipped file, or set {KINDS[kind]['retrain']}: true")


def data_mismatches(recipe: Mapping, digits: Mapping, kind: str = "oracle") -> list[str]:
    """``digits.<key>`` of :data:`DATA_KEYS` whose configured value differs from the recipe's, as
    "digits.seed: the oracle was trained on 0, the config has 3"."""
    trained = recipe["config"]["digits"]
    out = []
    for key in DATA_KEYS:
        a, b = trained.get(key), digits.get(key)
        if key == "source_fractions":
            same = a is not None and b is not None and len(a) == len(b) and all(
                abs(float(x) - float(y)) < 1e-9 for x, y in zip(a, b))
        else:
            same = a == b
        if not same:
            out.append(f"digits.{key}: the {kind} was trained on {a!r}, the config has {b!r}")
    return out


def option_mismatches(trained: Mapping, configured: Mapping, section: str) -> list[str]:
    """``<section>.<key>`` whose configured value differs from the one the shipped checkpoint was trained with, as
    "projection.epochs: the shipped checkpoint was trained with 1, the config has 2" (keys of ``trained`` only)."""
    return [f"{section}.{key}: the shipped checkpoint was trained with {trained[key]!r}, the config has "
            f"{configured.get(key)!r}" for key in sorted(trained) if configured.get(key) != trained[key]]


def ship(kind: str, results: Path, dest: Path, command: str) -> dict:
    """Copy the training job's model from ``results`` into ``dest`` and write its recipe from the job's record
    (``metrics.json`` of rule train_oracle, ``refine.json`` of rule refine_encoder): the options and the digits
    config it was trained with, its history and numbers. An encoder's recipe is the ``"encoder"`` entry of the
    DLSGAN's ``RECIPE.json`` in ``dest`` (the generator it was refined against must be that folder's)."""
    spec = KINDS[kind]
    record_path = results / spec["metrics"]
    record = json.loads(record_path.read_text())
    if "shipped" in record or "digits" not in record:
        raise ValueError(f"{record_path}: not written by the rule that trains {spec['what']} ({spec['retrain']}: "
                         f"true), so {results / spec['model']} is not one trained here")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(results / spec["model"], dest / spec["shipped"])
    entry = {
        "command": command,
        "git_commit": git_commit(),
        "library_version": __version__,
        "shipped": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint_sha256_16": file_hash(dest / spec["shipped"]),
    }
    if kind == "oracle":
        entry.update(config={"digits": record["digits"], "oracle": {"train": record["options"]}},
                     val=record["val"], test=record["test"], history=record["history"])
        write_json(dest / RECIPE, entry)
        return entry
    dlsgan_recipe = json.loads((dest / RECIPE).read_text())
    if dlsgan_recipe.get("checkpoint_sha256_16") != record["generator"]["sha256_16"]:
        raise ValueError(f"{record_path}: the encoder was refined against the generator "
                         f"{record['generator']['sha256_16']}, not {dest / RECIPE}'s "
                         f"{dlsgan_recipe.get('checkpoint_sha256_16')}")
    entry.update(config={"digits": record["digits"], "projection": record["options"]},
                 generator=record["generator"], val=record["val"], history=record["history"])
    write_json(dest / RECIPE, {**dlsgan_recipe, "encoder": entry})
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("--results", type=Path, help="the training job's folder (default: the kind's results folder)")
    ap.add_argument("--dest", type=Path, help="where it ships (default: checkpoints/digits_oracle, checkpoints/digits)")
    ap.add_argument("--command", required=True, help="the exact command that trained it")
    args = ap.parse_args()
    spec = KINDS[args.kind]
    dest = args.dest or Path(spec["dest"])
    entry = ship(args.kind, args.results or Path(spec["results"]), dest, args.command)
    print(f"shipped {dest / spec['shipped']} ({entry['checkpoint_sha256_16']})")


if __name__ == "__main__":
    main()
