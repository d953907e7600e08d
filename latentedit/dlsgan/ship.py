"""Ship a DLSGAN checkpoint trained by the workflow into ``checkpoints/<world>/``, with its recipe.

Usage (after ``snakemake results/digits/dlsgan/dls/checkpoint.pt results/digits/dlsgan/nodls/checkpoint.pt``)::

    python -m latentedit.dlsgan.ship --results results/digits/dlsgan --dest checkpoints/digits \
        --command "<the exact snakemake command used>"

Writes ``dlsgan.pt`` (the DLS run), ``dlsgan_history.csv``, ``nodls_history.csv`` (the ablation, when present),
``curves.png``, ``ablation.json/png`` (when present) and ``RECIPE.json``: the generator's architecture (``arch``,
"dcgan" or "stylegan2", from the checkpoint's spec), the config file used, the command, the git commit, the
checkpoint's SHA-256, and the last-epoch metrics of both runs.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
from pathlib import Path

import pandas as pd
import yaml

from latentedit import __version__
from latentedit.io.atomic import write_json
from latentedit.io.checkpoints import load_checkpoint
from latentedit.io.provenance import file_hash, git_commit


def ship(results: Path, dest: Path, command: str, configfile: Path) -> dict:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(results / "dls" / "checkpoint.pt", dest / "dlsgan.pt")
    shutil.copyfile(results / "dls" / "history.csv", dest / "dlsgan_history.csv")
    shutil.copyfile(results / "dls" / "curves.png", dest / "curves.png")
    last = {"dls": pd.read_csv(results / "dls" / "history.csv").iloc[-1].to_dict()}
    if (results / "nodls" / "history.csv").exists():
        shutil.copyfile(results / "nodls" / "history.csv", dest / "nodls_history.csv")
        last["nodls"] = pd.read_csv(results / "nodls" / "history.csv").iloc[-1].to_dict()
    for name in ("ablation.json", "ablation.png"):  # from `snakemake dlsgan_ablation`, when it has run
        if (results / name).exists():
            shutil.copyfile(results / name, dest / name)
    spec = load_checkpoint(dest / "dlsgan.pt", expect_kind="dlsgan", require=("spec",))["spec"]
    recipe = {
        "arch": spec["generator"].get("arch", "dcgan"),
        "command": command,
        "config": yaml.safe_load(configfile.read_text()),
        "git_commit": git_commit(),
        "library_version": __version__,
        "shipped": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint_sha256_16": file_hash(dest / "dlsgan.pt"),
        "last_epoch": last,
    }
    write_json(dest / "RECIPE.json", recipe)
    return recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results/digits/dlsgan"))
    ap.add_argument("--dest", type=Path, default=Path("checkpoints/digits"))
    ap.add_argument("--configfile", type=Path, default=Path("config.yaml"))
    ap.add_argument("--command", required=True, help="the exact command that trained the checkpoint")
    args = ap.parse_args()
    recipe = ship(args.results, args.dest, args.command, args.configfile)
    print(f"shipped {args.dest / 'dlsgan.pt'} ({recipe['checkpoint_sha256_16']})")


if __name__ == "__main__":
    main()
