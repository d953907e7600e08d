"""HDF5 image/latent stores, atomic writes and provenance hashes (latentedit.io)."""

from __future__ import annotations

import hashlib
import json
import os

import h5py
import numpy as np
import pandas as pd
import torch
import pytest

from latentedit import __version__
from latentedit.io.atomic import atomic_path, write_json
from latentedit.io.h5 import StoreError, create_atomically
from latentedit.io.image_store import ImageStore, read_image_store, write_image_store
from latentedit.io.latent_store import (LATENT_SPACES, LatentStore, latent_space, read_latent_store,
                                       read_latent_store_attrs, write_latent_store)
from latentedit.io.provenance import config_hash, file_hash

N = 6


def make_image_store(n: int = N, seed: int = 0) -> ImageStore:
    rng = np.random.default_rng(seed)
    split = np.array(["train", "train", "train", "val", "test", "test"][:n], dtype=object)
    return ImageStore(
        images=rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8),
        attributes=rng.integers(0, 2, size=(n, 3), dtype=np.uint8),
        attribute_names=["count_1", "has_0", "has_1"],
        split=split,
        ids=np.array([f"img_{i}" for i in range(n)], dtype=object),
        extra={"slot_labels": rng.integers(-1, 10, size=(n, 4)).astype(np.int8),
               "source_index": rng.integers(-1, 1797, size=(n, 4)).astype(np.int32)},
        attrs={"config_hash": "abc123", "seed": 7, "world": "digits"},
    )


def make_latent_store(n: int = N, seed: int = 0) -> LatentStore:
    rng = np.random.default_rng(seed)
    return LatentStore(
        latents=rng.normal(size=(n, 5)).astype(np.float32),
        ids=np.array([f"img_{i}" for i in range(n)], dtype=object),
        split=np.array(["train", "train", "train", "val", "test", "test"][:n], dtype=object),
        attributes=rng.integers(0, 2, size=(n, 3), dtype=np.uint8),
        attribute_names=["count_1", "has_0", "has_1"],
        attrs={"latent_space": "z", "config_hash": "deadbeef"},
    )


def truncate_to_half(path) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


# ----------------------------------------------------------------------------------------------- atomic writes


def test_atomic_path_renames_on_success(tmp_path):
    final = tmp_path / "sub" / "out.txt"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        tmp.write_text("done")
        assert not final.exists()  # nothing visible under the final name before the block completes
    assert final.read_text() == "done"
    assert list(final.parent.iterdir()) == [final]  # no temporary sibling left


def test_atomic_path_exception_leaves_previous_file_and_no_temp(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(final) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("boom")
    assert final.read_text() == "old"
    assert list(tmp_path.iterdir()) == [final]


def test_create_atomically_exception_leaves_no_store(tmp_path):
    final = tmp_path / "store.h5"
    with pytest.raises(RuntimeError, match="killed"):
        with create_atomically(final, "latentedit.images", {"seed": 1}) as f:
            f.create_dataset("images", data=np.zeros((2, 1, 4, 4), np.uint8))
            raise RuntimeError("killed mid-write")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_image_store_failing_midway_leaves_no_file(tmp_path, monkeypatch):
    final = tmp_path / "images.h5"
    store = make_image_store()
    original = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        if name == "ids":
            raise OSError("disk full")
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="disk full"):
        write_image_store(final, store)
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_json_sorted_and_atomic(tmp_path):
    path = tmp_path / "a" / "m.json"
    write_json(path, {"b": 1, "a": [1, 2]})
    text = path.read_text()
    assert json.loads(text) == {"a": [1, 2], "b": 1}
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")


# ----------------------------------------------------------------------------------------------- image store


def test_image_store_round_trip(tmp_path):
    path = tmp_path / "images.h5"
    store = make_image_store()
    write_image_store(path, store)
    back = read_image_store(path)
    np.testing.assert_array_equal(back.images, store.images)
    assert back.images.dtype == np.uint8
    np.testing.assert_array_equal(back.attributes, store.attributes)
    assert back.attribute_names == store.attribute_names
    assert list(back.split) == list(store.split)
    assert list(back.ids) == list(store.ids)
    assert set(back.extra) == set(store.extra)
    for k, v in store.extra.items():
        np.testing.assert_array_equal(back.extra[k], v)
        assert back.extra[k].dtype == v.dtype
    for k, v in store.attrs.items():
        assert back.attrs[k] == v
    assert back.attrs["library_version"] == __version__
    assert back.attrs["format"] == "latentedit.images"


def test_image_store_select_and_helpers():
    store = make_image_store()
    test = store.select("test")
    assert list(test.ids) == ["img_4", "img_5"]
    np.testing.assert_array_equal(test.extra["slot_labels"], store.extra["slot_labels"][4:])
    np.testing.assert_array_equal(store.attribute("has_1"), store.attributes[:, 2])
    with pytest.raises(KeyError, match="has_7"):
        store.attribute("has_7")


def test_model_range_round_trips_uint8():
    from latentedit.imaging import to_model_range, to_uint8

    store = make_image_store()
    f = to_model_range(store.images)
    assert f.dtype == torch.float32 and float(f.min()) >= -1 and float(f.max()) <= 1
    np.testing.assert_allclose(f.numpy(), store.images / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(to_uint8(f), store.images)


@pytest.mark.parametrize("breakage, message", [
    (lambda s: setattr(s, "ids", np.array(["x"] * N, dtype=object)), "not unique"),
    (lambda s: setattr(s, "split", np.array(["train"] * (N - 1) + ["holdout"], dtype=object)), "holdout"),
    (lambda s: setattr(s, "attributes", s.attributes[:-1]), "attributes has"),
    (lambda s: setattr(s, "attribute_names", ["a", "b"]), "attribute names"),
    (lambda s: setattr(s, "images", s.images.astype(np.float32)), "uint8"),
    (lambda s: s.extra.update(bad=np.zeros(N - 2)), "extra/bad"),
])
def test_image_store_writer_refuses_invalid(tmp_path, breakage, message):
    store = make_image_store()
    breakage(store)
    path = tmp_path / "images.h5"
    with pytest.raises(StoreError, match=message) as e:
        write_image_store(path, store)
    assert str(path) in str(e.value)
    assert not path.exists()


def test_image_store_refuses_truncated_file(tmp_path):
    path = tmp_path / "images.h5"
    write_image_store(path, make_image_store())
    truncate_to_half(path)
    with pytest.raises(StoreError) as e:
        read_image_store(path)
    assert str(path) in str(e.value)


def test_image_store_refuses_non_hdf5(tmp_path):
    path = tmp_path / "images.h5"
    path.write_text("this is not HDF5\n" * 100)
    with pytest.raises(StoreError) as e:
        read_image_store(path)
    assert str(path) in str(e.value)


def test_image_store_refuses_missing_file(tmp_path):
    path = tmp_path / "nope.h5"
    with pytest.raises(StoreError, match="does not exist") as e:
        read_image_store(path)
    assert str(path) in str(e.value)


def test_image_store_refuses_wrong_format(tmp_path):
    path = tmp_path / "latents.h5"
    write_latent_store(path, make_latent_store())
    with pytest.raises(StoreError, match="latentedit.images") as e:
        read_image_store(path)
    assert str(path) in str(e.value)


def test_image_store_refuses_missing_dataset(tmp_path):
    path = tmp_path / "images.h5"
    write_image_store(path, make_image_store())
    with h5py.File(path, "r+") as f:
        del f["ids"]
    with pytest.raises(StoreError, match="ids") as e:
        read_image_store(path)
    assert str(path) in str(e.value)


# ----------------------------------------------------------------------------------------------- latent store


def test_latent_store_round_trip(tmp_path):
    path = tmp_path / "latents.h5"
    store = make_latent_store()
    write_latent_store(path, store)
    back = read_latent_store(path)
    np.testing.assert_array_equal(back.latents, store.latents)
    assert back.latents.dtype == np.float32
    assert list(back.ids) == list(store.ids) and list(back.split) == list(store.split)
    np.testing.assert_array_equal(back.attributes, store.attributes)
    assert back.attribute_names == store.attribute_names
    for k, v in store.attrs.items():
        assert back.attrs[k] == v
    assert back.attrs["library_version"] == __version__
    val = back.select("val")
    assert list(val.ids) == ["img_3"] and val.latents.shape == (1, 5)


def test_latent_store_round_trip_multidimensional(tmp_path):
    path = tmp_path / "wplus.h5"
    store = make_latent_store()
    store.latents = np.random.default_rng(1).normal(size=(N, 3, 4)).astype(np.float32)  # (N, 18, 512)-like
    store.attrs["latent_space"] = "wplus"
    write_latent_store(path, store)
    back = read_latent_store(path)
    np.testing.assert_array_equal(back.latents, store.latents)
    assert latent_space(back.attrs, path) == "wplus"


@pytest.mark.parametrize("space, shape", [("z", (5,)), ("w", (5,)), ("wplus", (3, 5))])
def test_latent_store_records_its_space(tmp_path, space, shape):
    path = tmp_path / f"{space}.h5"
    store = make_latent_store()
    store.latents = np.random.default_rng(2).normal(size=(N, *shape)).astype(np.float32)
    store.attrs["latent_space"] = space
    write_latent_store(path, store)
    assert latent_space(read_latent_store(path).attrs, path) == space
    assert latent_space(read_latent_store_attrs(path), path) == space


@pytest.mark.parametrize("legacy, space", [("dlsgan_scaled_z", "z"), ("stylegan2_wplus", "wplus")])
def test_legacy_latent_space_names_are_normalised(tmp_path, legacy, space):
    path = tmp_path / "old.h5"
    store = make_latent_store()
    if space == "wplus":
        store.latents = store.latents.reshape(N, 1, 5)
    store.attrs["latent_space"] = legacy
    write_latent_store(path, store)
    back = read_latent_store(path)
    assert back.attrs["latent_space"] == legacy  # the file keeps what it says; the reader normalises
    assert latent_space(back.attrs, path) == space
    assert LATENT_SPACES == ("z", "w", "wplus")


@pytest.mark.parametrize("space, shape", [("z", (3, 5)), ("w", (3, 5)), ("wplus", (5,))])
def test_latent_store_refuses_codes_of_the_wrong_rank_for_its_space(tmp_path, space, shape):
    store = make_latent_store()
    store.latents = np.zeros((N, *shape), np.float32)
    store.attrs["latent_space"] = space
    path = tmp_path / "bad.h5"
    with pytest.raises(StoreError, match=f"{space} codes must have shape") as e:
        write_latent_store(path, store)
    assert str(path) in str(e.value) and not path.exists()
    from latentedit.io.latent_store import create_latent_store

    with pytest.raises(StoreError, match=f"{space} codes must have shape") as e:
        with create_latent_store(path, shape, store.ids, store.split, store.attributes, store.attribute_names,
                                 {"latent_space": space}):
            pass
    assert str(path) in str(e.value) and not path.exists()


def test_latent_store_reader_refuses_a_rank_mismatch_on_disk(tmp_path):
    path = tmp_path / "latents.h5"
    write_latent_store(path, make_latent_store())
    with h5py.File(path, "r+") as f:  # relabelled behind the writer's back: (N, 5) codes said to be W+
        f.attrs["latent_space"] = "wplus"
    with pytest.raises(StoreError, match="wplus codes must have shape \\(L, D\\)") as e:
        read_latent_store(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("attrs, message", [({}, "does not record its latent space"),
                                            ({"latent_space": "w_plus"}, "unknown latent space 'w_plus'")])
def test_latent_store_refuses_a_missing_or_unknown_space_naming_the_file(tmp_path, attrs, message):
    store = make_latent_store()
    store.attrs = {"config_hash": "deadbeef", **attrs}
    path = tmp_path / "latents.h5"
    with pytest.raises(StoreError, match=message) as e:
        write_latent_store(path, store)
    assert str(path) in str(e.value) and not path.exists()
    write_latent_store(path, make_latent_store())
    with h5py.File(path, "r+") as f:
        if "latent_space" in attrs:
            f.attrs["latent_space"] = attrs["latent_space"]
        else:
            del f.attrs["latent_space"]
    with pytest.raises(StoreError, match=message) as e:
        read_latent_store(path)
    assert str(path) in str(e.value)


def test_wplus_store_written_in_batches_equals_the_store_written_at_once(tmp_path):
    from latentedit.io.latent_store import create_latent_store

    store = make_latent_store()
    store.latents = np.random.default_rng(3).normal(size=(N, 4, 3)).astype(np.float32)
    store.attrs["latent_space"] = "wplus"
    write_latent_store(tmp_path / "once.h5", store)
    with create_latent_store(tmp_path / "batched.h5", (4, 3), store.ids, store.split, store.attributes,
                             store.attribute_names, store.attrs) as w:
        for i in range(0, N, 4):
            w.append(store.latents[i:i + 4])
    once, batched = read_latent_store(tmp_path / "once.h5"), read_latent_store(tmp_path / "batched.h5")
    np.testing.assert_array_equal(batched.latents, once.latents)
    assert batched.latents.shape == (N, 4, 3)
    assert {k: v for k, v in batched.attrs.items()} == {k: v for k, v in once.attrs.items()}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_latent_store_writer_refuses_non_finite(tmp_path, bad):
    store = make_latent_store()
    store.latents[2, 1] = bad
    path = tmp_path / "latents.h5"
    with pytest.raises(StoreError, match="NaN/inf") as e:
        write_latent_store(path, store)
    assert str(path) in str(e.value) and "[2]" in str(e.value)
    assert not path.exists()


def test_latent_store_reader_refuses_nan_on_disk(tmp_path):
    path = tmp_path / "latents.h5"
    write_latent_store(path, make_latent_store())
    with h5py.File(path, "r+") as f:  # corrupt behind the writer's back
        f["latents"][3, 0] = np.nan
    with pytest.raises(StoreError, match="NaN/inf") as e:
        read_latent_store(path)
    assert str(path) in str(e.value)


def test_latent_store_refuses_float64(tmp_path):
    store = make_latent_store()
    store.latents = store.latents.astype(np.float64)
    with pytest.raises(StoreError, match="float32"):
        write_latent_store(tmp_path / "l.h5", store)


def test_latent_store_refuses_truncated_and_non_hdf5(tmp_path):
    path = tmp_path / "latents.h5"
    write_latent_store(path, make_latent_store(n=6))
    truncate_to_half(path)
    with pytest.raises(StoreError) as e:
        read_latent_store(path)
    assert str(path) in str(e.value)

    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00\x01garbage" * 64)
    with pytest.raises(StoreError) as e:
        read_latent_store(junk)
    assert str(junk) in str(e.value)


def test_latent_store_refuses_image_store(tmp_path):
    path = tmp_path / "images.h5"
    write_image_store(path, make_image_store())
    with pytest.raises(StoreError, match="latentedit.latents"):
        read_latent_store(path)


# ----------------------------------------------------------------------------------------------- provenance


def test_config_hash_is_order_independent_and_value_sensitive():
    a = {"lr": 1.0e-3, "nested": {"x": 1, "y": [1, 2]}}
    b = {"nested": {"y": [1, 2], "x": 1}, "lr": 1.0e-3}
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash({**a, "lr": 2.0e-3})
    assert config_hash(a) != config_hash({**a, "nested": {"x": 1, "y": [2, 1]}})  # list order matters
    h = config_hash(a)
    assert len(h) == 16 and int(h, 16) >= 0


def test_file_hash_matches_sha256(tmp_path):
    path = tmp_path / "blob.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # spans several read blocks
    path.write_bytes(data)
    assert file_hash(path) == hashlib.sha256(data).hexdigest()[:16]


def test_empty_latent_store_round_trip(tmp_path):
    store = make_latent_store().select("nonexistent-split")
    assert len(store.latents) == 0
    path = tmp_path / "empty.h5"
    write_latent_store(path, store)
    assert read_latent_store(path).latents.shape == (0, 5)


def test_image_store_rows_of_finds_ids_and_names_missing_ones():
    from latentedit.io.image_store import ImageStore

    store = ImageStore(images=np.zeros((3, 1, 2, 2), np.uint8), attributes=np.zeros((3, 1), np.uint8),
                       attribute_names=["a"], split=np.array(["train"] * 3, dtype=object),
                       ids=np.array(["x", "y", "z"], dtype=object))
    np.testing.assert_array_equal(store.rows_of(["z", "x"]), [2, 0])
    with pytest.raises(KeyError, match="renders.h5: 1 ids .*'q'"):
        store.rows_of(["x", "q"], "renders.h5")


# ----------------------------------------------------------------------------------------------- checksums (issue 16)


def make_render_store(seed: int = 0):
    from latentedit.io.render_store import RenderStore

    rng = np.random.default_rng(seed)
    return RenderStore(images=rng.integers(0, 256, size=(3, 4, 3, 8, 8), dtype=np.uint8),
                       alphas=np.array([0.0, 0.5, 1.0]), ids=np.array([f"img_{i}" for i in range(4)], dtype=object),
                       latent_logits=rng.normal(size=(3, 4, 2)).astype(np.float32), attribute_names=["a", "b"],
                       attrs={"method": "lw", "edit": "e", "calibration": "{}"})


def _write(kind: str, path) -> None:
    from latentedit.io.render_store import write_render_store

    {"images": lambda: write_image_store(path, make_image_store(n=6)),
     "latents": lambda: write_latent_store(path, make_latent_store()),
     "renders": lambda: write_render_store(path, make_render_store())}[kind]()


def _read(kind: str, path):
    from latentedit.io.render_store import read_render_store

    return {"images": read_image_store, "latents": read_latent_store, "renders": read_render_store}[kind](path)


def data_offset(path, dataset: str) -> tuple[int, int]:
    """(byte offset, size) in the file of the first chunk (or the contiguous data) of ``dataset``."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        if ds.chunks is None:
            return ds.id.get_offset(), ds.id.get_storage_size()
        info = ds.id.get_chunk_info(0)
        return info.byte_offset, info.size


def flip_byte(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


@pytest.mark.parametrize("kind, dataset", [
    ("images", "images"), ("images", "ids"), ("images", "attributes"), ("images", "extra/slot_labels"),
    ("latents", "latents"), ("latents", "split"),
    ("renders", "images"), ("renders", "latent_logits"),
])
def test_a_flipped_byte_in_a_data_region_fails_the_reader_naming_the_file(tmp_path, kind, dataset):
    path = tmp_path / f"{kind}.h5"
    _write(kind, path)
    _read(kind, path)  # intact: reads
    offset, size = data_offset(path, dataset)
    flip_byte(path, offset + size // 2)
    with pytest.raises(StoreError, match="corrupt store") as e:
        _read(kind, path)
    assert str(path) in str(e.value)


def test_a_flipped_byte_fails_the_lazy_reader_at_the_row_it_damaged(tmp_path):
    from latentedit.io.image_store import open_image_store

    path = tmp_path / "images.h5"
    write_image_store(path, make_image_store())
    with h5py.File(path, "r") as f:
        info = f["images"].id.get_chunk_info(4)  # one chunk per image: row 4
    flip_byte(path, info.byte_offset + info.size // 2)
    with open_image_store(path) as store:
        store.images[:4]  # rows before it read
        with pytest.raises(StoreError, match="corrupt store") as e:
            store.images[3:5]
    assert str(path) in str(e.value)


def _write_version_1(kind: str, path) -> None:
    """A store as latentedit wrote it before checksums: no format_version, contiguous data, vlen strings."""
    fmt = {"images": "latentedit.images", "latents": "latentedit.latents", "renders": "latentedit.renders"}[kind]
    with h5py.File(path, "w") as f:
        f.attrs["format"] = fmt
        f.create_dataset("ids", data=np.array(["a", "b"], dtype=h5py.string_dtype()))


@pytest.mark.parametrize("kind", ["images", "latents", "renders"])
def test_a_store_without_checksums_is_refused_saying_to_rerun(tmp_path, kind):
    path = tmp_path / f"{kind}.h5"
    _write_version_1(kind, path)
    with pytest.raises(StoreError, match=r"format version 1, written without checksums.*rerun the stage that wrote "
                                         r"it \(`snakemake --forcerun .*\.h5`") as e:
        _read(kind, path)
    assert str(e.value).startswith(f"{path}: ")


def test_a_dataset_without_checksum_is_refused_even_in_a_version_2_store(tmp_path):
    path = tmp_path / "images.h5"
    write_image_store(path, make_image_store())
    with h5py.File(path, "r+") as f:
        ids = f["ids"][()]
        del f["ids"]
        f.create_dataset("ids", data=ids)  # contiguous, no fletcher32
    with pytest.raises(StoreError, match=r"\['ids'\] carry no checksum") as e:
        read_image_store(path)
    assert str(path) in str(e.value)


def test_every_dataset_is_checksummed_and_strings_are_fixed_length_utf8(tmp_path):
    path = tmp_path / "images.h5"
    store = make_image_store()
    store.ids = np.array(["é", "ü/0", "x", "", "🙂", "y"], dtype=object)
    write_image_store(path, store)
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert len(names) == 7 and all(f[n].fletcher32 for n in names), names
        assert f.attrs["format_version"] == 2
        assert h5py.check_string_dtype(f["ids"].dtype).length is not None  # fixed length: the checksum sees the text
    assert list(read_image_store(path).ids) == list(store.ids)


# ----------------------------------------------------------------------------------------------- streaming, views


def test_lazy_rows_index_like_an_array(tmp_path):
    from latentedit.io.image_store import open_image_store

    path = tmp_path / "images.h5"
    store = make_image_store()
    write_image_store(path, store)
    x = store.images
    with open_image_store(path) as lazy:
        rows = lazy.images
        assert len(rows) == N and rows.shape == x.shape and rows.dtype == np.uint8
        np.testing.assert_array_equal(rows[1:4], x[1:4])
        np.testing.assert_array_equal(rows[np.array([5, 0, 3, 0])], x[[5, 0, 3, 0]])  # unsorted, repeated
        np.testing.assert_array_equal(rows[torch.tensor([2, 1])], x[[2, 1]])
        np.testing.assert_array_equal(rows[2], x[2])
        np.testing.assert_array_equal(np.concatenate(list(rows.batches(4))), x)
        test = lazy.select("test")
        assert len(test.images) == 2 and list(test.ids) == ["img_4", "img_5"]
        np.testing.assert_array_equal(test.images[::-1], x[[5, 4]])
        np.testing.assert_array_equal(np.asarray(test.images), x[4:])


def test_store_written_in_batches_equals_the_store_written_at_once(tmp_path):
    from latentedit.io.image_store import create_image_store

    store = make_image_store()
    write_image_store(tmp_path / "once.h5", store)
    with create_image_store(tmp_path / "batches.h5", store.attribute_names, (1, 8, 8), store.attrs) as w:
        for s in (slice(0, 4), slice(4, 5), slice(5, 6)):
            w.append(store.images[s], store.attributes[s], store.split[s], store.ids[s],
                     {k: v[s] for k, v in store.extra.items()})
        assert not (tmp_path / "batches.h5").exists()  # atomic: nothing under the final name before the end
    a, b = read_image_store(tmp_path / "once.h5"), read_image_store(tmp_path / "batches.h5")
    np.testing.assert_array_equal(a.images, b.images)
    assert list(a.ids) == list(b.ids) and a.extra.keys() == b.extra.keys()
    assert (tmp_path / "once.h5").read_bytes() == (tmp_path / "batches.h5").read_bytes()


def test_a_view_store_holds_one_copy_and_checks_its_source(tmp_path):
    from latentedit.io.image_store import create_image_store, open_image_store

    source = make_image_store()
    source.extra = {}
    write_image_store(tmp_path / "src.h5", source)
    own = np.full((2, 1, 8, 8), 7, np.uint8)
    path = tmp_path / "view.h5"
    with create_image_store(path, source.attribute_names, (1, 8, 8), {}) as w:
        w.append_view(tmp_path / "src.h5", 1, 4, source.attributes[1:4], source.split[1:4], source.ids[1:4])
        w.append(own, np.zeros((2, 3), np.uint8), ["test", "test"], ["own_0", "own_1"])
    back = read_image_store(path)
    np.testing.assert_array_equal(back.images, np.concatenate([source.images[1:4], own]))
    assert list(back.ids) == ["img_1", "img_2", "img_3", "own_0", "own_1"]
    with h5py.File(path, "r") as f:  # the source's pixels are not copied: only the store's own rows are in it
        assert f["images"].is_virtual and f["pixels"].shape == (2, 1, 8, 8)
    with open_image_store(path) as lazy:
        np.testing.assert_array_equal(lazy.images[[4, 0]], np.stack([own[1], source.images[1]]))
    # a flipped byte in the source is caught through the view
    offset, size = data_offset(tmp_path / "src.h5", "images")
    with h5py.File(tmp_path / "src.h5", "r") as f:
        info = f["images"].id.get_chunk_info(2)
    flip_byte(tmp_path / "src.h5", info.byte_offset + info.size // 2)
    with pytest.raises(StoreError, match="corrupt store") as e:
        read_image_store(path)
    assert str(path) in str(e.value)
    # a missing source fails naming both files (HDF5 alone would read zeros)
    (tmp_path / "src.h5").unlink()
    with pytest.raises(StoreError, match=r"view of .*src.h5:images, which does not exist") as e:
        read_image_store(path)
    assert str(e.value).startswith(f"{path}: ")


def test_a_view_of_a_store_in_another_folder_is_refused(tmp_path):
    from latentedit.io.image_store import create_image_store

    store = make_image_store()
    write_image_store(tmp_path / "other" / "src.h5", store)
    with pytest.raises(StoreError, match="same folder"):
        with create_image_store(tmp_path / "view.h5", store.attribute_names, (1, 8, 8), {}) as w:
            w.append_view(tmp_path / "other" / "src.h5", 0, 2, store.attributes[:2], store.split[:2], store.ids[:2])
    assert not (tmp_path / "view.h5").exists()


def test_latent_store_written_in_batches(tmp_path):
    from latentedit.io.latent_store import create_latent_store

    store = make_latent_store()
    path = tmp_path / "latents.h5"
    with create_latent_store(path, (5,), store.ids, store.split, store.attributes, store.attribute_names,
                             store.attrs) as w:
        w.append(store.latents[:4])
        w.append(store.latents[4:])
    np.testing.assert_array_equal(read_latent_store(path).latents, store.latents)
    with pytest.raises(StoreError, match="5 codes written for 6 ids"):
        with create_latent_store(path, (5,), store.ids, store.split, store.attributes, store.attribute_names,
                                 store.attrs) as w:
            w.append(store.latents[:5])
    bad = store.latents.copy()
    bad[4, 1] = np.inf
    with pytest.raises(StoreError, match=r"NaN/inf \(first rows: \[4\]\)"):
        with create_latent_store(path, (5,), store.ids, store.split, store.attributes, store.attribute_names,
                                 store.attrs) as w:
            w.append(bad[:3])
            w.append(bad[3:])
    np.testing.assert_array_equal(read_latent_store(path).latents, store.latents)  # the good store is untouched


# ---------------------------------------------------------------------------------------------------------------
# training histories (latentedit.io.history)


def test_history_file_is_what_pandas_writes(tmp_path):
    from latentedit.io.history import write_history

    rows = [{"epoch": -1, "steps": 0, "val_loss": 4.543612345, "best": True, "seconds": 0},
            {"epoch": 0, "steps": 73, "train_loss": 0.504474, "val_loss": float("nan"), "best": np.bool_(False),
             "seconds": 0.631958, "x32": np.float32(0.1), "n": np.int64(5), "component": 7},
            {"epoch": 1, "steps": 146, "train_loss": 1e-7, "val_loss": 123456789.0, "best": True, "seconds": 1.5,
             "x32": np.float32(2.5), "n": None, "component": 3, "note": "a"}]
    write_history(tmp_path / "ours.csv", rows)
    pd.DataFrame(rows).to_csv(tmp_path / "pandas.csv", index=False, float_format="%.6g")
    assert (tmp_path / "ours.csv").read_text() == (tmp_path / "pandas.csv").read_text()
    assert list(pd.read_csv(tmp_path / "ours.csv").columns) == ["epoch", "steps", "val_loss", "best", "seconds",
                                                                "train_loss", "x32", "n", "component", "note"]
