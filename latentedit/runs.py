"""A finished run, loaded to edit images it never saw: ``latentedit.load_run(path)`` (behind the ``latentedit``
command, :mod:`latentedit.cli`).

A run directory is what the workflow leaves under ``results/<world>/`` of its working directory W. From the provenance
the run recorded, :class:`Run` finds what editing a new image takes:

=========== ======================================================= ==============================================
piece       digits                                                  faces
=========== ======================================================= ==============================================
generator   the DLSGAN checkpoint whose hash the render stores      the StyleGAN2 (or pSp decoder) whose hash the
            record (``generator_checkpoint_hash``)                  render stores record, at their image size
encoder     the run's projection encoder                            pSp (hash: the latent store's
            (``projection/encoder.pt``, hash: the latent store's    ``encoder_checkpoint_hash``) after FFHQ
            ``encoder_checkpoint_hash``) with the latent scale s,   alignment or a centre crop
            into the store's ``latent_space``, optimised per image  (:mod:`latentedit.faces.align`)
            as the store's ``projection_options`` say
            (:func:`latentedit.projection.project.project_images`)
edits       ``edits/<method>/<edit>/seed<s>/model.pt`` (:func:`latentedit.edits.model.load_edit`), with the calibrated
            step d of ``render/<method>/<edit>/seed<s>.h5`` (attr ``calibration``, rule ``evaluate_edit``); s is the
            first of the run config's ``edits.seeds`` (as the workflow's grids), else the lowest trained seed, unless
            ``seed=`` picks another
judge       ``oracle/model.pt`` (the image oracle)                  ``oracle/model.pt`` and ArcFace
=========== ======================================================= ==============================================

Checkpoints from outside the run directory are looked up among candidates and taken only when their hash is the one
the run recorded: a path given explicitly (``generator=``, ``encoder=``), the paths in the run's config (``config=``,
by default ``W/config.yaml`` when it is a config of this world; relative paths count from W, ``dlsgan.checkpoint``
from the checkout, as in the workflow), the run's own trained DLSGAN (``dlsgan/dls/checkpoint.pt``) and the shipped
generators (``checkpoints/digits_stylegan2/dlsgan.pt``, the default W+ world's, and ``checkpoints/digits/dlsgan.pt``,
the Z world's). ArcFace (faces judge only) has no recorded hash: the explicit or configured file.
A missing output of the run fails naming the Snakemake target that makes it.

α is in units of the calibrated step d by default (α = 1 is where the latent classifier reads the edit as done on
the run's validation codes); ``raw=True`` passes α to :func:`latentedit.edits.model.apply_edit` unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import yaml

from latentedit.edits.methods import DEFAULT_METHOD, METHODS, method_label
from latentedit.edits.model import apply_edit, load_edit
from latentedit.io import latent_store
from latentedit.io.provenance import file_hash
from latentedit.io.render_store import RenderStoreInfo, read_render_store_info
from latentedit.io.user_images import MIN_SIDE, ImageInputError, digits_canvas, read_image
from latentedit.training_utils import pick_device

CHECKOUT = Path(__file__).resolve().parents[1]  # the checkout of an editable install: config.yaml's relative paths
SHIPPED_GENERATORS = ("checkpoints/digits_stylegan2/dlsgan.pt", "checkpoints/digits/dlsgan.pt")  # W+, Z world


class RunError(ValueError):
    """A run cannot serve the request: an output is missing (the message names the Snakemake target that makes it),
    a checkpoint it used cannot be found or does not match its provenance, or an unknown edit or method (the
    available ones are listed)."""


def load_run(path: str | os.PathLike, device: str = "auto", config: str | os.PathLike | None = None,
             generator: str | os.PathLike | None = None, encoder: str | os.PathLike | None = None,
             arcface: str | os.PathLike | None = None, detector: str | os.PathLike | None = None,
             seed: int | None = None) -> Run:
    """A finished run (``results/<world>/``) for editing new images; models load on first use.

    Parameters
    ----------
    path : path-like
        The run directory, e.g. ``results/digits``.
    device : str
        ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    config : path-like, optional
        The config the run used (default: ``config.yaml`` in the run's working directory, if it is for this world).
    generator, encoder : path-like, optional
        Checkpoints to try first (digits: the DLSGAN checkpoint and the refined encoder; faces: the StyleGAN2 or
        pSp checkpoint that renders, and the pSp checkpoint that encodes); taken only when their hash matches.
    arcface : path-like, optional
        faces: the ArcFace ONNX of the judge.
    detector : path-like, optional
        faces: an insightface detection ONNX; images are then aligned (FFHQ) around the detected face, otherwise
        centre-cropped.
    seed : int, optional
        Which training seed's edit models to use (``edits.seeds``; default: the config's first, as the workflow's
        grids, else the lowest the run trained).
    """
    return Run(path, device=device, config=config, generator=generator, encoder=encoder, arcface=arcface,
               detector=detector, seed=seed)


class Run:
    """A finished run; see the module docstring. Attributes load lazily: ``generator``, ``encoder``, ``judge``."""

    def __init__(self, path, device="auto", config=None, generator=None, encoder=None, arcface=None, detector=None,
                 seed=None):
        self.path = Path(path)
        self.workdir = self.path.resolve().parent.parent  # W: results/<world>/ lives in the working directory
        self.world = self.path.resolve().name
        if not self.path.is_dir():
            raise RunError(f"{self.path}: no such run directory (a finished run's results/<world>/, e.g. "
                           "results/digits)")
        self.latent_path = self.require("latents.h5", "the latent store")
        self.latent_attrs = latent_store.read_latent_store_attrs(self.latent_path)
        self.world = str(self.latent_attrs.get("world", self.world))
        self.device = pick_device(device)
        self.config = _run_config(config, self.workdir, self.world)
        self._explicit = {"generator": generator, "encoder": encoder, "arcface": arcface}
        if detector is not None and self.world != "faces":
            raise RunError(f"a face detector applies to the faces world only; {self.path} is a {self.world} run")
        self._detector = detector
        self._hashes: dict[Path, str] = {}
        trained = sorted({int(p.name.removeprefix("seed")) for p in self.path.glob("edits/*/*/seed*")
                          if p.name.removeprefix("seed").isdigit()})
        if seed is not None and trained and int(seed) not in trained:
            raise RunError(f"{self.path} has no edit models of seed {seed} (trained seeds: {trained})")
        seeds = (self.config.get("edits") or {}).get("seeds") or []
        configured = [int(s) for s in seeds if int(s) in trained]
        # default: the workflow's first seed (its grids and latent summary), else the lowest trained one
        self.seed = int(seed) if seed is not None else (configured or trained or [0])[0]

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, world={self.world!r}, {len(self.edits)} edits)"

    # -- outputs of the run --------------------------------------------------------------------------------------

    def target(self, relative: str) -> str:
        """The Snakemake target (relative to the working directory) of a file of this run."""
        return f"results/{self.world}/{relative}"

    def require(self, relative: str, what: str) -> Path:
        """The run's file ``relative`` (to the run directory); a RunError naming its Snakemake target if missing."""
        path = self.path / relative
        if not path.is_file():
            raise RunError(f"{path} is missing ({what}): make it with `snakemake {self.target(relative)}` in "
                           f"{self.workdir}")
        return path

    @cached_property
    def edits(self) -> dict[tuple[str, str], Edit]:
        """Every trained edit of the run, {(method, edit): :class:`Edit`} (models load on first use)."""
        found = sorted(self.path.glob(f"edits/*/*/seed{self.seed}/model.pt"))
        return {(p.parents[2].name, p.parents[1].name): Edit(self, p.parents[2].name, p.parents[1].name, p)
                for p in found}

    def _require_edits(self) -> None:
        if not self.edits:
            raise RunError(f"{self.path} holds no trained edit models (edits/<method>/<edit>/seed<s>/model.pt): "
                           f"make them with `snakemake edits` in {self.workdir}")

    def edit(self, name: str, method: str = DEFAULT_METHOD) -> Edit:
        """The trained edit ``name`` of ``method``; a RunError lists what the run has when there is no such edit."""
        self._require_edits()
        if (method, name) in self.edits:
            return self.edits[method, name]
        methods_here = sorted({m for m, _ in self.edits})
        names_here = sorted({e for _, e in self.edits})
        if method not in METHODS:
            raise RunError(f"unknown method {method!r} (registered: {', '.join(METHODS)}; trained in this run: "
                           f"{', '.join(methods_here)})")
        if name in names_here:
            with_it = sorted(m for m, e in self.edits if e == name)
            target = self.target(f"edits/{method}/{name}/seed{self.seed}/model.pt")
            raise RunError(f"edit {name!r} has no {method!r} model in this run (its methods here: "
                           f"{', '.join(with_it)}): make it with `snakemake {target}` after adding {method!r} to "
                           "edits.methods")
        raise RunError(f"unknown edit {name!r} (trained in this run: {', '.join(names_here)})")

    def edit_table(self):
        """The trained edits with what the run measured at α = d (``metrics.parquet``): one row per (method, edit),
        columns method, edit, d, calibrated, target_change_rate, attribute_preservation, identity,
        latent_target_change_rate, (digits: slots_kept, clean_edit_rate,) n_images (image oracle / judge on the
        rendered test images)."""
        import pandas as pd

        from latentedit.evaluation.aggregate import SLOT_METRICS, calibration_from_table, summary_table

        self._require_edits()
        df = pd.read_parquet(self.require("metrics.parquet", "the results table"))
        summary = summary_table(df, calibration_from_table(df))
        summary = summary[summary["seed"] == self.seed].drop(columns="seed")
        trained = pd.DataFrame(list(self.edits), columns=["method", "edit"])
        table = trained.merge(summary, on=["method", "edit"], how="left").sort_values(["edit", "method"])
        slots = [c for c in SLOT_METRICS if table[c].notna().any()]  # judges that read slots (digits)
        columns = ["method", "edit", "d", "calibrated", "target_change_rate", "attribute_preservation", "identity",
                   "latent_target_change_rate", *slots, "n_images"]
        return table[columns].reset_index(drop=True)

    @cached_property
    def render_infos(self) -> dict[tuple[str, str], RenderStoreInfo]:
        """{(method, edit): the render store's attrs, α grid and image shape} (images not read), of the run's seed."""
        return {(p.parents[1].name, p.parent.name): read_render_store_info(p)
                for p in sorted(self.path.glob(f"render/*/*/seed{self.seed}.h5"))}

    # -- checkpoints, found by the hashes the run recorded --------------------------------------------------------

    def _hash(self, path: Path) -> str:
        path = path.resolve()
        if path not in self._hashes:
            self._hashes[path] = file_hash(path)
        return self._hashes[path]

    def _config_path(self, *keys: str, base: Path | None = None) -> Path | None:
        value = self.config
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return None if value in (None, "") else (base or self.workdir) / str(value)

    def _find(self, what: str, expected: str, candidates: Sequence[Path | None], option: str) -> Path:
        """The first candidate whose hash is ``expected``; a RunError listing what was tried otherwise."""
        tried, seen = [], set()
        for path in candidates:
            if path is None or path.resolve() in seen:
                continue
            seen.add(path.resolve())
            if not path.is_file():
                tried.append(f"{path} (missing)")
                continue
            found = self._hash(path)
            if found == expected:
                return path
            tried.append(f"{path} (hash {found})")
        raise RunError(f"cannot find the {what} this run used (hash {expected!r} recorded by {self.path}): tried "
                       f"{'; '.join(tried) or 'nothing'}. Give its path with {option}, or the run's config with "
                       "--config")

    @cached_property
    def generator_path(self) -> Path:
        """The generator checkpoint the run rendered with (its hash is the render stores' record)."""
        recorded = {str(info.attrs.get("generator_checkpoint_hash", "")) for info in self.render_infos.values()}
        if len(recorded) > 1:
            raise RunError(f"{self.path}: its render stores were made by different generators {sorted(recorded)}; "
                           f"the run is out of date: rerun `snakemake` in {self.workdir}")
        expected = recorded.pop() if recorded else str(self.latent_attrs.get("generator_checkpoint_hash", ""))
        explicit = _path_or_none(self._explicit["generator"])
        if self.world == "digits":
            candidates = [explicit, self.path / "dlsgan" / "dls" / "checkpoint.pt",
                          self._config_path("dlsgan", "checkpoint", base=CHECKOUT),
                          *(CHECKOUT / path for path in SHIPPED_GENERATORS)]
        else:
            candidates = [explicit, self._config_path("faces", "generator_checkpoint"),
                          self._config_path("faces", "psp_checkpoint"), _path_or_none(self._explicit["encoder"])]
        return self._find("generator checkpoint", expected, candidates, "--generator")

    @cached_property
    def render_size(self) -> int:
        """The side of the images the run rendered (faces: StyleGAN2 output area-pooled to this size)."""
        if not self.render_infos:
            raise RunError(f"{self.path} holds no render stores (render/<method>/<edit>/seed<s>.h5): make them with "
                           f"`snakemake` in {self.workdir} (rule evaluate_edit)")
        return int(next(iter(self.render_infos.values())).image_shape[-1])

    @cached_property
    def generator(self) -> torch.nn.Module:
        """The world's renderer (codes (B, *S) → images (B, C, H, W) in [−1, 1]) on the run's device."""
        from latentedit.worlds import load_renderer

        options = {"latent_space": self.latent_space}
        if self.world == "faces":
            precision = (self.config.get("faces") or {}).get("precision") or "fp32"
            options.update(render_size=self.render_size, precision=precision)
        return load_renderer(self.world, self.generator_path, self.device, options)

    @cached_property
    def latent_space(self) -> str:
        """The space of the run's codes (z, w, wplus), as its latent store records it."""
        try:
            return latent_store.latent_space(self.latent_attrs, self.latent_path)
        except ValueError as e:
            raise RunError(str(e)) from None

    def render(self, codes, batch_size: int = 64) -> np.ndarray:
        """Images of codes (N, *S): uint8 (N, C, H, W), as the run's render stores hold them."""
        from latentedit.imaging import generate_uint8

        z = torch.as_tensor(np.asarray(codes, dtype=np.float32)).to(self.device)
        return generate_uint8(self.generator, z, batch_size).numpy()

    @cached_property
    def encoder(self) -> DigitsEncoder | FacesEncoder:
        """The run's image → code projector (:class:`DigitsEncoder` or :class:`FacesEncoder`)."""
        expected = str(self.latent_attrs.get("encoder_checkpoint_hash", ""))
        explicit = _path_or_none(self._explicit["encoder"])
        if self.world == "digits":
            from latentedit.dlsgan.checkpoint import load_dlsgan
            from latentedit.projection.wplus import load_code_encoder

            default = self.require("projection/encoder.pt", "the refined encoder") if explicit is None else None
            path = self._find("refined encoder", expected, [explicit, default], "--encoder")
            encoder, space = load_code_encoder(path, self.device)
            if space != self.latent_space:
                raise RunError(f"{path} encodes {space} codes, the run's latent store holds {self.latent_space} codes")
            generator, _, scale, _ = load_dlsgan(self.generator_path, self.device)
            return DigitsEncoder(encoder, scale, self.device, space=space, generator=generator,
                                 optimization=_projection_optimization(self.latent_attrs, self.latent_path))
        from latentedit.faces.psp import load_psp

        path = self._find("pSp encoder checkpoint", expected,
                          [explicit, self._config_path("faces", "psp_checkpoint")], "--encoder")
        detector = None
        if self._detector is not None:
            from latentedit.faces.align import FaceDetector
            from latentedit.worlds import onnx_providers

            try:
                detector = FaceDetector(self._detector, providers=onnx_providers(self.device))
            except (ValueError, FileNotFoundError) as e:  # not a file, not ONNX, not a detector with landmarks
                raise RunError(f"face detector: {e}") from None
        batch = int((self.config.get("faces") or {}).get("encode_batch_size") or 16)
        return FacesEncoder(load_psp(path, self.device), self.device, detector, batch)

    @cached_property
    def judge(self):
        """The world's judge (:func:`latentedit.worlds.load_judge`): ``predict(uint8 images)["probs"]`` (N, A)."""
        from latentedit.worlds import load_judge

        inputs = {"oracle": self.require("oracle/model.pt", "the image oracle")}
        options = {}
        if self.world == "faces":
            arcface = _path_or_none(self._explicit["arcface"]) or self._config_path("faces", "arcface")
            if arcface is None or not arcface.is_file():
                raise RunError(f"the faces judge needs the run's ArcFace ONNX ({arcface or 'not configured'}): give "
                               "it with --arcface, or the run's config with --config")
            inputs["arcface"] = arcface
            options = {"identity_crop": (self.config.get("faces") or {}).get("identity_crop")}
        try:
            return load_judge(self.world, inputs, self.device, options)
        except (ValueError, FileNotFoundError) as e:  # e.g. an ONNX that is not an ArcFace model
            raise RunError(f"the run's judge: {e}") from None


class Edit:
    """One trained edit of a run: z' = :func:`~latentedit.edits.model.apply_edit` (model, z, α·d), α in units of
    the calibrated step d (``raw=True``: α as given)."""

    def __init__(self, run: Run, method: str, name: str, path: Path):
        self.run, self.method, self.name, self.path = run, method, name, Path(path)

    def __repr__(self) -> str:
        return f"Edit({self.method!r}, {self.name!r})"

    @property
    def label(self) -> str:
        return f"{method_label(self.method)} · {self.name}"

    @cached_property
    def model(self) -> dict:
        """The edit model (:func:`latentedit.edits.model.load_edit`)."""
        return load_edit(self.path)

    @cached_property
    def calibration(self) -> dict:
        """The render store's calibration (d, rate, reached, tau, …; :mod:`latentedit.render.calibrate`)."""
        relative = f"render/{self.method}/{self.name}/seed{self.run.seed}.h5"
        info = self.run.render_infos.get((self.method, self.name))
        if info is None:
            self.run.require(relative, f"the calibrated step d of {self.method}/{self.name}")
            info = read_render_store_info(self.run.path / relative)
        return info.calibration

    @property
    def d(self) -> float:
        """The calibrated step: the smallest α at which the latent classifier reads the run's validation source
        codes as edited (``render.calibration_rate``)."""
        return float(self.calibration["d"])

    def raw_alpha(self, alpha: float, raw: bool = False) -> float:
        """α as :func:`apply_edit` takes it: ``alpha``·d, or ``alpha`` itself when ``raw``."""
        return float(alpha) if raw else float(alpha) * self.d

    def apply(self, codes, alpha: float, raw: bool = False):
        """Edited codes z' for codes (N, *S) (ndarray or tensor, returned as the same type) at α (units of d unless
        ``raw``)."""
        z = torch.as_tensor(codes, dtype=torch.float32)
        a = self.raw_alpha(alpha, raw)
        out = z.clone() if a == 0 else apply_edit(self.model, z, a)
        return out if isinstance(codes, torch.Tensor) else out.numpy()


class DigitsEncoder:
    """Digits images → codes of the run's latent space, as the projection stage made them: the run's projection
    encoder with the generator's latent scale s (z: E(x)∘s; w / wplus: the W/W+ head, or the mapping of E(x)∘s), then
    the store's per-image optimisation (:func:`latentedit.projection.project.project_images`)."""

    notice = ""

    def __init__(self, encoder, scale: torch.Tensor, device, batch_size: int = 500, space: str = "z",
                 generator: torch.nn.Module | None = None, optimization: dict | None = None):
        self.encoder, self.scale, self.device, self.batch_size = encoder, scale, device, batch_size
        self.space, self.generator, self.optimization = space, generator, dict(optimization or {})
        spec = encoder.spec.get("discriminator", encoder.spec)  # a W+ head holds the DLSGAN encoder's spec
        self.canvas, self.channels = int(spec["canvas"]), int(spec["channels"])

    def prepare(self, path, notes: list | None = None) -> np.ndarray:
        """The image file at ``path`` on the digits canvas, uint8 (C, canvas, canvas)
        (:func:`latentedit.io.user_images.digits_canvas`); ImageInputError naming the file when it cannot be used."""
        image, done = digits_canvas(read_image(path, MIN_SIDE), self.canvas, self.channels)
        if notes is not None:
            notes.extend(done)
        return image

    def project(self, images) -> np.ndarray:
        """Codes (N, *S) float32 of uint8 images (N, C, canvas, canvas): z or w (N, D), wplus (N, L, D)."""
        from latentedit.projection.project import project_images

        return project_images(self.encoder, self.scale, _stack(images), self.device, self.batch_size,
                              space=self.space, generator=self.generator, **self.optimization)


class FacesEncoder:
    """Face images → W+ codes with pSp, after FFHQ alignment around a detected face or a centre crop."""

    def __init__(self, psp, device, detector=None, batch_size: int = 16):
        self.psp, self.device, self.detector, self.batch_size = psp, device, detector, batch_size
        self.notice = ("" if detector is not None else "no face detector given: each image is centre-cropped to a "
                       "square, so it must already be an FFHQ-aligned face crop (give --detector <insightface "
                       "detection .onnx> to detect and align)")

    def prepare(self, path, notes: list | None = None) -> np.ndarray:
        """The face crop of the image file at ``path``, uint8 (3, 256, 256); ImageInputError (or
        :class:`latentedit.faces.align.NoFaceFound`) naming the file when it cannot be used."""
        from latentedit.faces.align import NoFaceFound, centre_crop

        image = read_image(path, MIN_SIDE)
        if self.detector is None:
            if notes is not None and image.size[0] != image.size[1]:
                notes.append(f"centre-cropped from {image.size[0]}×{image.size[1]}")
            return centre_crop(image)
        try:
            return self.detector.align(image)
        except NoFaceFound as e:
            raise ImageInputError(f"{path}: {e}") from None

    def project(self, images) -> np.ndarray:
        """W+ codes (N, n_styles, 512) float32 of uint8 images (N, 3, S, S)."""
        from latentedit.faces.project import encode_images

        return encode_images(self.psp, _stack(images), self.batch_size, self.device, desc="pSp encode")


# -- editing image files ------------------------------------------------------------------------------------------


@dataclass
class EditReport:
    """What :func:`edit_images` wrote and skipped."""

    strips: list[Path] = field(default_factory=list)
    results: Path | None = None  # the NPZ (latentedit.io.edit_results), None when no image could be edited
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, what was done to it)


def edit_images(run: Run, edit: Edit, files: Sequence[str | os.PathLike], alphas: Sequence[float], out_dir,
                raw: bool = False, judge: bool = False, batch_size: int = 32,
                progress: Callable | None = None) -> EditReport:
    """Project, edit at every α, render and write one strip per image plus one NPZ of codes and α values.

    Parameters
    ----------
    run, edit
        From :func:`load_run` and :meth:`Run.edit`.
    files : sequence of path-like
        Image files. One that cannot be used (unreadable, not an image, too small, no face found) is skipped and
        reported; the others are still edited.
    alphas : sequence of float
        Edit strengths, in units of the calibrated step d (``raw``: as :func:`apply_edit` takes them).
    out_dir : path-like
        Receives ``<stem>.<method>.<edit>.png`` per image and ``<method>.<edit>.npz``
        (:mod:`latentedit.io.edit_results`), each written atomically.
    judge : bool
        Add the judge's probability of the edited attribute under every frame (all probabilities go to the NPZ).
    batch_size : int
        Images projected and rendered together.
    progress : callable, optional
        Called with the number of images done after each batch (a progress bar's ``update``).
    """
    from latentedit.io.edit_results import write_edit_results
    from latentedit.plotting import edit_strip

    out_dir = Path(out_dir)
    model = edit.model
    raw_alphas = [edit.raw_alpha(a, raw) for a in alphas]
    judge_model = run.judge if judge else None
    k = list(model["attribute_names"]).index(model["attribute"])
    report = EditReport()
    names = _strip_names([Path(f) for f in files], f"{edit.method}.{edit.name}")
    kept, inputs, codes, edited, renders, probs = [], [], [], [], [], []
    for start in range(0, len(files), batch_size):
        chunk = list(range(start, min(start + batch_size, len(files))))
        ready = []
        for i in chunk:
            notes: list[str] = []
            try:
                ready.append((i, run.encoder.prepare(files[i], notes)))
            except ImageInputError as e:
                report.skipped.append((str(files[i]), str(e)))
            report.notes += [(str(files[i]), n) for n in notes]
        if ready:
            x = np.stack([im for _, im in ready])  # (B, C, H, W) uint8
            z = run.encoder.project(x)  # (B, *S)
            z_edit = np.stack([edit.apply(z, a, raw=True) for a in raw_alphas])  # (A, B, *S)
            frames = run.render(np.concatenate([z[None], z_edit]).reshape(-1, *z.shape[1:]))
            frames = frames.reshape(1 + len(raw_alphas), len(z), *frames.shape[1:])  # (1 + A, B, C, H, W)
            p = None
            if judge_model is not None:
                p_in = judge_model.predict(x)["probs"]  # (B, L)
                p_out = judge_model.predict(frames.reshape(-1, *frames.shape[2:]))["probs"].reshape(
                    len(frames), len(z), -1)
                p = np.concatenate([p_in[None], p_out]).transpose(1, 0, 2)  # (B, 2 + A, L)
            for b, (i, image) in enumerate(ready):
                path = out_dir / names[i]
                labels = ["input", "reconstruction"] + [_alpha_label(a, r, raw) for a, r in zip(alphas, raw_alphas)]
                captions = None if p is None else [f"{model['attribute']}\np = {v:.2f}" for v in p[b, :, k]]
                edit_strip([image, *frames[:, b]], labels, path, captions,
                           title=f"{Path(files[i]).name}: {edit.label}")
                report.strips.append(path)
            kept += [str(files[i]) for i, _ in ready]
            inputs.append(x)
            codes.append(z)
            edited.append(z_edit.swapaxes(0, 1))
            renders.append(frames.swapaxes(0, 1))
            if p is not None:
                probs.append(p)
        if progress is not None:
            progress(len(chunk))
    if kept:
        report.results = out_dir / f"{edit.method}.{edit.name}.npz"
        write_edit_results(report.results, files=kept, inputs=np.concatenate(inputs), codes=np.concatenate(codes),
                           edited=np.concatenate(edited), renders=np.concatenate(renders), alphas=raw_alphas,
                           alphas_in_d=None if raw else list(alphas), d=_d_or_nan(edit), model=model,
                           probs=np.concatenate(probs) if probs else None)
    return report


def _projection_optimization(attrs: dict, path) -> dict:
    """The per-image optimisation the projection stage applied (the store's ``projection_options``; none for a
    store written before it was recorded)."""
    import json

    from latentedit.projection.options import RefineConfig

    raw = attrs.get("projection_options")
    if raw is None:
        return {}
    try:
        return RefineConfig(**json.loads(raw)).optimization()
    except (TypeError, ValueError) as e:
        raise RunError(f"{path}: unreadable projection_options {raw!r}: {e}") from None


def _stack(images) -> np.ndarray:
    return images if isinstance(images, np.ndarray) else np.stack(list(images))


def _path_or_none(value) -> Path | None:
    return None if value is None else Path(value)


def _alpha_label(alpha: float, raw_alpha: float, raw: bool) -> str:
    return f"α = {raw_alpha:.3g}" if raw else f"α = {alpha:g}·d\n  = {raw_alpha:.3g}"


def _d_or_nan(edit: Edit) -> float:
    try:
        return edit.d
    except RunError:
        return float("nan")


def _strip_names(files: Sequence[Path], suffix: str) -> list[str]:
    """``<stem>.<suffix>.png`` per file; a stem seen before gets ``-2``, ``-3``, … (a/x.png and b/x.png)."""
    names, seen = [], {}
    for f in files:
        seen[f.stem] = seen.get(f.stem, 0) + 1
        stem = f.stem if seen[f.stem] == 1 else f"{f.stem}-{seen[f.stem]}"
        names.append(f"{stem}.{suffix}.png")
    return names


def _run_config(explicit, workdir: Path, world: str) -> dict:
    """The run's config: ``explicit``, else ``W/config.yaml`` when it is a config of ``world``, else {}."""
    path = Path(explicit) if explicit is not None else workdir / "config.yaml"
    if explicit is None and not path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise RunError(f"{path}: cannot read the run's config: {e}") from None
    if not isinstance(cfg, dict):
        raise RunError(f"{path}: not a config (a YAML mapping)")
    if cfg.get("world", "digits") != world:
        if explicit is not None:
            raise RunError(f"{path} is a config of the {cfg.get('world', 'digits')!r} world, the run is {world!r}")
        return {}
    return cfg
