"""The ``latentedit`` command (``pip install -e .`` installs it): edit your own images with a finished run, list its
edits, export them for other tools.

    latentedit edits RUN_DIR
    latentedit edit RUN_DIR IMAGES... --edit NAME [--method lw] [--alphas 0.5,1,1.5 | --steps 5] [--raw-alpha]
                    --out DIR [--judge] [--detector det.onnx]
    latentedit export RUN_DIR --edit NAME [--method lw] --format npz|interfacegan [--out FILE]

Arguments and printing only: the work is :mod:`latentedit.runs` and :mod:`latentedit.edits.export`.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from latentedit import __version__
from latentedit.edits.methods import DEFAULT_METHOD

DEFAULT_STEPS, DEFAULT_MAX_ALPHA = 4, 2.0  # α = 0.5, 1, 1.5, 2 (units of d) when neither --alphas nor --steps


def _run_options(func):
    """Where the run's checkpoints are, when its provenance alone does not find them, and the device."""
    options = [
        click.option("--device", default="auto", show_default=True, help="auto (CUDA when available), cpu, cuda"),
        click.option("--config", type=click.Path(dir_okay=False), help="the config the run used (default: "
                     "config.yaml in the run's working directory, when it is for the run's world)"),
        click.option("--generator", type=click.Path(dir_okay=False), help="generator checkpoint to try first "
                     "(taken only when its hash is the one the run recorded)"),
        click.option("--encoder", type=click.Path(dir_okay=False), help="encoder checkpoint to try first (digits: "
                     "refined DLSGAN encoder; faces: pSp; hash-checked likewise)"),
        click.option("--seed", type=click.IntRange(min=0), help="the training seed whose edit models to use (one of "
                     "the run's edits.seeds; default: the lowest trained)"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _errors_as_messages(func):
    """Library errors (a missing output, an unknown edit, a bad checkpoint) end the command with their message."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from latentedit.edits.export import ExportError
        from latentedit.io.checkpoints import CheckpointError
        from latentedit.io.h5 import StoreError
        from latentedit.runs import RunError

        try:
            return func(*args, **kwargs)
        except (RunError, ExportError, CheckpointError, StoreError, FileNotFoundError) as e:
            raise click.ClickException(str(e)) from None
    return wrapper


def _load(run_dir, **options):
    from latentedit.runs import load_run

    return load_run(run_dir, **options)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="latentedit")
def main():
    """Edit your own images with a finished latentedit run, and export its edits."""


@main.command("edits")
@click.argument("run_dir", type=click.Path())
@_run_options
@_errors_as_messages
def edits_command(run_dir, **options):
    """The trained edits of RUN_DIR (e.g. results/digits) and what the run measured at α = d.

    d is the calibrated step (the latent classifier reads the run's validation codes as edited); the rates are the
    image oracle's (faces: the attribute classifiers') on the rendered test images, preservation and identity
    against the reconstruction (results/<world>/metrics.parquet); digits runs add slots_kept and clean_edit_rate (the
    existing digits kept, and the target reached with them kept).
    """
    from latentedit.io.tables import to_markdown

    run = _load(run_dir, **options)
    click.echo(to_markdown(run.edit_table()), nl=False)


def _parse_alphas(alphas: str | None, steps: int | None, max_alpha: float) -> list[float]:
    if alphas is not None and steps is not None:
        raise click.UsageError("give --alphas or --steps, not both")
    if alphas is not None:
        try:
            values = [float(a) for a in alphas.split(",") if a.strip()]
        except ValueError:
            raise click.BadParameter(f"{alphas!r} is not a comma-separated list of numbers", param_hint="--alphas")
        if not values or not all(math.isfinite(a) for a in values):
            raise click.BadParameter(f"{alphas!r}: give finite numbers, e.g. 0.5,1,1.5", param_hint="--alphas")
        return values
    steps = DEFAULT_STEPS if steps is None else steps
    return [max_alpha * (i + 1) / steps for i in range(steps)]


@main.command("edit")
@click.argument("run_dir", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--edit", "edit_name", required=True, help="the edit definition's name, e.g. add_digit_1to2")
@click.option("--method", default=DEFAULT_METHOD, show_default=True, help="the method whose model of the edit to use")
@click.option("--alphas", help="comma-separated strengths, in units of the calibrated step d (α = 1 is d)")
@click.option("--steps", type=click.IntRange(min=1), help=f"this many strengths evenly over (0, --max-alpha] "
              f"(default: {DEFAULT_STEPS})")
@click.option("--max-alpha", type=float, default=DEFAULT_MAX_ALPHA, show_default=True, help="the largest α of --steps")
@click.option("--raw-alpha", is_flag=True, help="α as the edit model takes it (LW/LT: a multiple of the trained map; "
              "InterFaceGAN: a distance in code units) instead of units of d")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="folder for the strips and "
              "the NPZ")
@click.option("--judge", is_flag=True, help="write the judge's probability of the edited attribute under each frame")
@click.option("--detector", type=click.Path(dir_okay=False), help="faces: an insightface detection ONNX (e.g. "
              "buffalo_l's det_10g.onnx): detect the face and align it as FFHQ was; without it, centre-crop")
@click.option("--arcface", type=click.Path(dir_okay=False), help="faces --judge: the run's ArcFace ONNX (default: "
              "from the run's config)")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@_run_options
@_errors_as_messages
def edit_command(run_dir, images, edit_name, method, alphas, steps, max_alpha, raw_alpha, out_dir, judge, detector,
                 arcface, batch_size, **options):
    """Project IMAGES with RUN_DIR's encoder, edit them at each α, render, and write to --out one strip per image
    (input | reconstruction | edits, labelled) and <method>.<edit>.npz with the codes and α values.

    An image that cannot be used (unreadable, not an image, too small, no face found) is named and skipped; the
    others are still edited, and the exit status is then 1.
    """
    from tqdm import tqdm

    from latentedit.runs import edit_images

    values = _parse_alphas(alphas, steps, max_alpha)
    run = _load(run_dir, detector=detector, arcface=arcface, **options)
    edit = run.edit(edit_name, method)
    model = edit.model  # an unreadable model fails here, before any image is read
    if not raw_alpha:
        cal = edit.calibration
        click.echo(f"{edit.label}: d = {edit.d:.4g} ({model['type']} edit); α in units of d: "
                   f"{', '.join(f'{a:g}' for a in values)}", err=True)
        if not cal.get("reached", True):
            click.echo(f"note: the latent classifier never read {cal.get('tau', 1):g} of the validation codes as "
                       f"edited; d is the α of its highest rate ({cal.get('rate', float('nan')):.3f})", err=True)
        if edit.d == 0:
            click.echo("note: d = 0 (the codes already read as edited), so every α·d is 0: use --raw-alpha",
                       err=True)
    if run.encoder.notice:
        click.echo(f"note: {run.encoder.notice}", err=True)
    hide = {"disable": True} if len(images) < 2 else {}  # else tqdm's default, which TQDM_DISABLE=1 turns off
    with tqdm(total=len(images), desc=f"edit {edit.name}", unit="image", **hide) as bar:
        report = edit_images(run, edit, images, values, out_dir, raw=raw_alpha, judge=judge, batch_size=batch_size,
                             progress=bar.update)
    for file, note in report.notes:
        click.echo(f"{file}: {note}", err=True)
    for file, reason in report.skipped:
        click.echo(f"skipped: {reason}", err=True)
    if report.results is not None:
        click.echo(f"wrote {len(report.strips)} strip(s) and {report.results} to {Path(out_dir)}")
    if report.skipped:
        raise click.ClickException(f"{len(report.skipped)} of {len(images)} image(s) could not be edited "
                                   "(named above)")


@main.command("export")
@click.argument("run_dir", type=click.Path())
@click.option("--edit", "edit_name", required=True, help="the edit definition's name")
@click.option("--method", default=DEFAULT_METHOD, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["npz", "interfacegan"]), required=True,
              help="npz: A, b per layer (affine) or n (direction); interfacegan: a direction's unit normal as a "
              "(1, D) float32 boundary .npy")
@click.option("--out", type=click.Path(dir_okay=False), help="output file (default: <method>.<edit>.npz or "
              "<method>.<edit>.boundary.npy)")
@_run_options
@_errors_as_messages
def export_command(run_dir, edit_name, method, fmt, out, **options):
    """Write one trained edit of RUN_DIR for other tools (layouts: latentedit/edits/export.py, README)."""
    from latentedit.edits.export import edit_arrays, interfacegan_boundary, write_npy, write_npz
    from latentedit.runs import RunError

    run = _load(run_dir, **options)
    edit = run.edit(edit_name, method)
    if fmt == "npz":
        try:
            d = edit.d
        except RunError:  # no render store: the arrays do not need d
            d = None
        out = Path(out or f"{method}.{edit_name}.npz")
        arrays = edit_arrays(edit.model, d)
        write_npz(out, arrays)
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items() if k in ("A", "b", "n"))
        click.echo(f"wrote {out}: {edit.model['type']} edit, {shapes}")
    else:
        out = Path(out or f"{method}.{edit_name}.boundary.npy")
        boundary = interfacegan_boundary(edit.model)
        write_npy(out, boundary)
        click.echo(f"wrote {out}: boundary {tuple(boundary.shape)} float32, unit norm (z' = z + α·n)")
