"""CelebA-HQ attribute files and image folders: parsing, label mapping, and errors that name the file and line."""

import numpy as np
import pytest
from PIL import Image

from latentedit.data.celebahq import (CELEBA_ATTRIBUTES, DataFileError, list_images, load_images, match_rows,
                                      parse_attribute_file, split_assignment)


def _write(path, rows, header=CELEBA_ATTRIBUTES, count=None):
    lines = [str(len(rows) if count is None else count), " ".join(header)]
    lines += [f"{name}  " + "  ".join(values) for name, values in rows]  # CelebA pads with double spaces
    path.write_text("\n".join(lines) + "\n")
    return path


def _values(ones=()):
    return ["1" if a in ones else "-1" for a in CELEBA_ATTRIBUTES]


def test_parses_rows_and_maps_minus_one_to_zero(tmp_path):
    path = _write(tmp_path / "anno.txt", [("0.jpg", _values({"Smiling", "Young"})), ("1.jpg", _values({"Male"}))])
    files, names, labels = parse_attribute_file(path)
    assert files == ["0.jpg", "1.jpg"] and names == list(CELEBA_ATTRIBUTES)
    assert labels.dtype == np.uint8 and labels.shape == (2, 40)
    assert labels[0].sum() == 2 and labels[0, CELEBA_ATTRIBUTES.index("Smiling")] == 1
    assert labels[1].tolist() == [int(a == "Male") for a in CELEBA_ATTRIBUTES]


@pytest.mark.parametrize("rows, count, match", [
    ([("0.jpg", _values()[:-1])], None, r"anno.txt:3: expected a file name and 40 values, got 40 fields"),
    ([("0.jpg", _values()), ("1.jpg", ["0"] + _values()[1:])], None, r"anno.txt:4: attribute values must be 1 or -1"),
    ([("0.jpg", _values()), ("0.jpg", _values())], None, r"anno.txt:4: '0.jpg' appears twice"),
    ([("0.jpg", _values())], 2, r"line 1 announces 2 rows but the file has 1"),
])
def test_bad_rows_fail_naming_the_line(tmp_path, rows, count, match):
    with pytest.raises(DataFileError, match=match):
        parse_attribute_file(_write(tmp_path / "anno.txt", rows, count=count))


def test_header_in_another_order_fails(tmp_path):
    header = list(CELEBA_ATTRIBUTES)
    header[0], header[1] = header[1], header[0]
    with pytest.raises(DataFileError, match=r"anno.txt:2: the header must list CelebA's 40 attributes"):
        parse_attribute_file(_write(tmp_path / "anno.txt", [("0.jpg", _values())], header=header))
    with pytest.raises(DataFileError, match=r"unknown: \['Glasses'\]"):
        parse_attribute_file(_write(tmp_path / "anno.txt", [("0.jpg", _values())],
                                    header=["Glasses", *CELEBA_ATTRIBUTES[1:]]))


def _images(folder, names, size=8):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((size, size, 3), 10 * i, np.uint8)).save(folder / name)


def test_rows_are_matched_to_images_in_file_order(tmp_path):
    _images(tmp_path / "img", ["2.jpg", "0.jpg"])
    files = ["0.jpg", "1.jpg", "2.jpg"]  # CelebA's file lists images the folder does not hold: skipped
    assert match_rows(tmp_path / "img", files, require_all=False).tolist() == [0, 2]
    with pytest.raises(DataFileError, match=r"1 images named by the attribute file are missing, e.g. \['1.jpg'\]"):
        match_rows(tmp_path / "img", files, require_all=True)
    with pytest.raises(DataFileError, match=r"1 images have no row in the attribute file, e.g. \['2.jpg'\]"):
        match_rows(tmp_path / "img", ["0.jpg"], require_all=False)


def test_a_non_image_file_fails_naming_it(tmp_path):
    _images(tmp_path / "img", ["0.jpg"])
    (tmp_path / "img" / "1.jpg").write_text("not an image")
    paths = list_images(tmp_path / "img")
    with pytest.raises(DataFileError, match=r"1.jpg: not a readable image"):
        load_images(paths, 8)


def test_images_are_resized_and_sorted(tmp_path):
    _images(tmp_path / "ffhq" / "00000", ["00001.png", "00000.png"], size=12)
    paths = list_images(tmp_path / "ffhq")
    assert [p.name for p in paths] == ["00000.png", "00001.png"]
    out = load_images(paths, 6)
    assert out.shape == (2, 3, 6, 6) and out.dtype == np.uint8


def test_split_assignment_is_seeded_and_proportional():
    a = split_assignment(100, (0.8, 0.1, 0.1), seed=0)
    assert (a == "train").sum() == 80 and (a == "val").sum() == 10 and (a == "test").sum() == 10
    assert (a == split_assignment(100, (0.8, 0.1, 0.1), seed=0)).all()
    assert not (a == split_assignment(100, (0.8, 0.1, 0.1), seed=1)).all()


class _StubJudge:
    """Stands in for the attribute classifiers: attribute 0 on where the image's mean is above 100."""

    def predict_proba(self, images):
        p = np.zeros((len(images), len(CELEBA_ATTRIBUTES)), np.float32)
        p[:, 0] = np.asarray(images).reshape(len(images), -1).mean(1) > 100
        return p


def _celebahq(tmp_path, n=10):
    from latentedit.data.celebahq import write_celebahq_store

    names = [f"{i}.jpg" for i in range(n)]
    _images(tmp_path / "img", names)
    rows = [(f, _values({"Smiling"} if i % 2 else ())) for i, f in enumerate(names)]
    files, attr_names, labels = parse_attribute_file(_write(tmp_path / "anno.txt", rows))
    rows = match_rows(tmp_path / "img", files, require_all=True)
    info = write_celebahq_store(tmp_path / "out" / "celebahq.h5", tmp_path / "img", files, labels, attr_names, rows, 8,
                                (0.6, 0.2, 0.2), 0, {"world": "faces"}, batch_size=3)
    return tmp_path / "out" / "celebahq.h5", info


def test_celebahq_store_groups_rows_by_split_in_file_order(tmp_path):
    from latentedit.io.image_store import read_image_store

    path, info = _celebahq(tmp_path)
    store = read_image_store(path)
    assert info["n"] == {"train": 6, "val": 2, "test": 2} and len(info["preview"]) == 10
    expected = split_assignment(10, (0.6, 0.2, 0.2), seed=0)
    assert list(store.split) == ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    for s in ("train", "val", "test"):  # each split keeps its images, in the attribute file's order
        assert list(store.ids[store.split == s]) == [f"{i}.jpg" for i in np.flatnonzero(expected == s)]
    i = list(store.ids).index("3.jpg")  # pixels and labels travel with their id
    assert store.images[i].mean() == 30 and store.attribute("Smiling")[i] == 1


def test_faces_eval_store_is_a_view_of_celebahq_plus_labelled_ffhq(tmp_path):
    import h5py

    from latentedit.data.celebahq import write_faces_eval_store
    from latentedit.io.image_store import read_image_store

    path, _ = _celebahq(tmp_path)
    celebahq = read_image_store(path)
    _images(tmp_path / "ffhq" / "00000", ["00000.png", "00001.png", "00002.png"], size=8)  # means 0, 10, 20
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "ffhq" / "00000" / "00002.png")
    paths = list_images(tmp_path / "ffhq")
    out = tmp_path / "out" / "images.h5"
    info = write_faces_eval_store(out, path, tmp_path / "ffhq", paths, _StubJudge(), {"world": "faces"}, batch_size=2)
    assert info["n"] == {"train": 6, "val": 2, "test": 3}
    store = read_image_store(out)
    np.testing.assert_array_equal(store.images[:8], celebahq.images[:8])
    assert list(store.ids[8:]) == ["ffhq/00000/00000.png", "ffhq/00000/00001.png", "ffhq/00000/00002.png"]
    assert store.attributes[8:, 0].tolist() == [0, 0, 1] and store.attributes[8:, 1:].sum() == 0
    with h5py.File(out, "r") as f:  # CelebA-HQ's pixels stay in celebahq.h5
        assert f["images"].is_virtual and f["pixels"].shape[0] == 3
    # without FFHQ the whole store is CelebA-HQ, a view
    info = write_faces_eval_store(out, path, None, None, None, {"world": "faces"})
    store = read_image_store(out)
    assert info["n"] == {"train": 6, "val": 2, "test": 2}
    np.testing.assert_array_equal(store.images, celebahq.images)
    assert list(store.ids) == list(celebahq.ids)
