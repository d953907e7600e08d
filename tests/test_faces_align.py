"""Face crops for pSp (latentedit.faces.align): FFHQ's quad from five landmarks, the aligned crop checked against
known landmarks (coloured markers drawn at them land where FFHQ's alignment puts them, whatever the pose), the centre
crop, and an insightface detector (a tiny SCRFD-shaped ONNX from latentedit.faces.tiny) feeding the alignment."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from latentedit.faces.align import FaceDetector, NoFaceFound, align_face, centre_crop, ffhq_quad

S = 256  # output side


def canonical_landmarks(size: int = S, mouth: float = 0.24) -> np.ndarray:
    """Landmarks whose FFHQ quad is exactly the square (0, 0)–(size, size): eyes size/4 apart (so the quad's half
    side is 2·size/4), eye-to-mouth ``mouth``·size (1.8× that stays under size/2), centre c = eyes + 0.1·(mouth − eyes)
    at the middle."""
    m = mouth * size
    eye_y = size / 2 - 0.1 * m
    return np.array([[size * 3 / 8, eye_y], [size * 5 / 8, eye_y], [size / 2, eye_y + 0.6 * m],
                     [size * 0.4, eye_y + m], [size * 0.6, eye_y + m]])


def similarity(theta: float, scale: float, shift) -> tuple[np.ndarray, np.ndarray]:
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return scale * rot, np.asarray(shift, dtype=np.float64)


def test_the_quad_of_canonical_landmarks_is_the_output_square():
    quad = ffhq_quad(canonical_landmarks())
    np.testing.assert_allclose(quad, [[0, 0], [0, S], [S, S], [S, 0]], atol=1e-9)


@given(theta=st.floats(-np.pi, np.pi), scale=st.floats(0.1, 10), dx=st.floats(-500, 500), dy=st.floats(-500, 500),
       noise=st.lists(st.floats(-20, 20), min_size=10, max_size=10))
def test_the_quad_moves_with_the_face(theta, scale, dx, dy, noise):
    """FFHQ's rule is equivariant under rotations, scalings and shifts: quad(T(landmarks)) = T(quad(landmarks))."""
    lm = canonical_landmarks() + np.reshape(noise, (5, 2))
    A, t = similarity(theta, scale, (dx, dy))
    np.testing.assert_allclose(ffhq_quad(lm @ A.T + t), ffhq_quad(lm) @ A.T + t, atol=1e-6 * max(1.0, scale) * S)


def test_degenerate_landmarks_are_refused():
    with pytest.raises(ValueError, match=r"shape \(5, 2\)"):
        ffhq_quad(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="degenerate"):
        ffhq_quad(np.zeros((5, 2)))


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]  # left eye … right mouth corner


def _marked_face(theta: float, scale: float, shift, size=(420, 380)) -> tuple[Image.Image, np.ndarray]:
    """A black image with a coloured disc at each landmark of the canonical face moved by a similarity."""
    A, t = similarity(theta, scale, shift)
    lm = (canonical_landmarks() - S / 2) @ A.T + t
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    r = 4 * scale
    for (x, y), colour in zip(lm, COLOURS):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return image, lm


def _marker_centres(image: np.ndarray, near: np.ndarray, radius: float = 20) -> np.ndarray:
    """Centroid of each colour's disc in an image (3, H, W), searched within ``radius`` of ``near`` (5, 2); in
    continuous pixel coordinates (pixel i spans [i, i + 1))."""
    img = image.astype(np.float64).transpose(1, 2, 0)  # (H, W, 3)
    ys, xs = np.mgrid[:img.shape[0], :img.shape[1]]
    centres = []
    for (x0, y0), colour in zip(near, COLOURS):
        on = np.array(colour) > 0
        weight = img[..., on].min(-1) - (img[..., ~on].max(-1) if (~on).any() else 0)  # this colour, not another
        window = (np.abs(xs + 0.5 - x0) < radius) & (np.abs(ys + 0.5 - y0) < radius)
        w = np.clip(weight, 0, None) * window
        assert w.sum() > 100, f"no {colour} marker near {(x0, y0)}"
        centres.append([(w * (xs + 0.5)).sum() / w.sum(), (w * (ys + 0.5)).sum() / w.sum()])
    return np.array(centres)


def _expected_centres(image: Image.Image, lm: np.ndarray, theta: float, scale: float, shift) -> np.ndarray:
    """Where FFHQ's alignment must put the discs drawn in ``image``: their measured centres (drawing rounds them to
    the pixel grid) taken back through the similarity. FFHQ's landmarks are pixel indices (pixel i is centred on i,
    hence its quad + 0.5), and the aligned crop is measured in continuous coordinates."""
    A, t = similarity(theta, scale, shift)
    drawn = _marker_centres(np.asarray(image).transpose(2, 0, 1), lm + 0.5, radius=8 * scale)
    return (drawn - 0.5 - t) @ np.linalg.inv(A).T + S / 2


@pytest.mark.parametrize("theta, scale, shift", [
    (0.0, 1.0, (210, 190)),  # upright, the output scale
    (0.5, 0.8, (200, 200)),  # turned 29°, smaller
    (-0.7, 1.3, (230, 170)),  # turned the other way, larger: the quad leaves the image (reflection padding)
    (np.pi, 0.6, (150, 250)),  # upside down
])
def test_markers_at_known_landmarks_land_where_ffhq_alignment_puts_them(theta, scale, shift):
    image, lm = _marked_face(theta, scale, shift)
    aligned = align_face(image, lm, S)
    assert aligned.shape == (3, S, S) and aligned.dtype == np.uint8
    expected = _expected_centres(image, lm, theta, scale, shift)
    np.testing.assert_allclose(expected, canonical_landmarks(), atol=1.0 / scale)  # drawing rounds to whole pixels
    np.testing.assert_allclose(_marker_centres(aligned, canonical_landmarks()), expected, atol=0.25)


def test_a_large_photo_is_shrunk_first_and_still_aligned():
    image, lm = _marked_face(0.2, 5.0, (1100, 1000), size=(2200, 2000))  # quad ≈ 5× the output: shrink by 2
    aligned = align_face(image, lm, S)
    # FFHQ shrinks pixel indices by the factor (i → i/2, not (i + 0.5)/2 − 0.5): a quarter of a shrunk pixel
    np.testing.assert_allclose(_marker_centres(aligned, canonical_landmarks()),
                               _expected_centres(image, lm, 0.2, 5.0, (1100, 1000)), atol=0.5)


def test_centre_crop_keeps_the_middle_square():
    image = Image.new("RGB", (300, 200), (0, 0, 0))
    ImageDraw.Draw(image).rectangle((140, 90, 159, 109), fill=(255, 255, 255))  # 20 px square at the centre
    ImageDraw.Draw(image).rectangle((0, 0, 40, 199), fill=(255, 0, 0))  # cut away: left of the centred 200 px
    crop = centre_crop(image, S)
    assert crop.shape == (3, S, S)
    assert crop[0, :, :20].max() < 30  # no red: the left 50 px were cut
    centre = crop[:, S // 2 - 10:S // 2 + 10, S // 2 - 10:S // 2 + 10]
    assert centre.min() > 200


# ---------------------------------------------------------------------------------------------------------------
# Detection through insightface


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    pytest.importorskip("insightface", reason="the faces extra (pip install -e '.[faces]') is not installed")
    from latentedit.faces.tiny import write_detector_onnx

    folder = tmp_path_factory.mktemp("detectors")
    write_detector_onnx(folder / "det.onnx", size=64)
    write_detector_onnx(folder / "blind.onnx", size=64, score=0.1)
    return folder


def test_the_detectors_landmarks_drive_the_alignment(detectors):
    from latentedit.faces.tiny import LANDMARKS, draw_face

    detector = FaceDetector(detectors / "det.onnx")
    face = draw_face({"Eyeglasses": 0, "Smiling": 1, "Blond_Hair": 0, "Wearing_Hat": 0, "Male": 0}, 64,
                     np.random.default_rng(0))
    found = detector.landmarks(face)
    np.testing.assert_allclose(found, LANDMARKS * 64, atol=1e-4)
    np.testing.assert_array_equal(detector.align(face), align_face(face, found))
    wide = face.resize((128, 128))  # the detector sees it at 64 px: landmarks come back in the image's pixels
    np.testing.assert_allclose(detector.landmarks(wide), LANDMARKS * 128, atol=1e-3)


def test_no_face_and_a_model_that_is_not_a_detector_are_told_apart(detectors, tmp_path):
    with pytest.raises(NoFaceFound, match="found no face"):
        FaceDetector(detectors / "blind.onnx").landmarks(Image.new("RGB", (64, 64)))
    from latentedit.faces.tiny import write_arcface_onnx

    write_arcface_onnx(tmp_path / "arcface.onnx")
    with pytest.raises(ValueError, match="not a face detector with landmarks .*routed it to ArcFaceONNX"):
        FaceDetector(tmp_path / "arcface.onnx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FaceDetector(tmp_path / "none.onnx")
    (tmp_path / "det.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="must be an .onnx file"):
        FaceDetector(tmp_path / "det.bin")
