from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from net2fair.data.datasets import MultiDomainDataset, split_of
from tests.badinputs import write_bad_inputs, write_valid_faces

R = 16


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("domains")
    write_valid_faces(root / "photo", 6, 24, seed=0)
    write_valid_faces(root / "anime", 3, 20, seed=1)
    kinds = write_bad_inputs(root / "messy")
    return {
        "photo": root / "photo",
        "anime": root / "anime",
        "messy": root / "messy",
        "kinds": kinds,
    }


# ----------------------------------------------------------------------------- split_of


def test_split_fraction_is_near_val_fraction():
    names = [f"img/{i:06d}.png" for i in range(1000)]
    for fraction in (0.05, 0.2, 0.5):
        share = sum(split_of(n, fraction) == "val" for n in names) / len(names)
        assert abs(share - fraction) < 0.04, (fraction, share)


def test_split_edges_and_validation():
    names = [f"{i}.png" for i in range(200)]
    assert {split_of(n, 0.0) for n in names} == {"train"}
    assert {split_of(n, 1.0) for n in names} == {"val"}
    with pytest.raises(ValueError, match="val_fraction"):
        split_of("a.png", 1.5)


def test_split_is_stable_when_files_are_added(tmp_path):
    write_valid_faces(tmp_path / "a", 40, 12, seed=0)
    write_valid_faces(tmp_path / "b", 40, 12, seed=1)
    domains = [("a", tmp_path / "a"), ("b", tmp_path / "b")]

    def assignment() -> dict[str, str]:
        out = {}
        for split in ("train", "val"):
            ds = MultiDomainDataset(domains, resolution=8, split=split, val_fraction=0.3)
            out.update({str(p): split for p in ds.paths})
        return out

    before = assignment()
    write_valid_faces(tmp_path / "a", 30, 12, seed=2, prefix="more")
    write_valid_faces(tmp_path / "b", 30, 12, seed=3, prefix="new")
    after = assignment()
    assert len(after) == len(before) + 60
    assert all(after[p] == s for p, s in before.items())
    assert set(before.values()) == {"train", "val"}


def test_train_and_val_partition_all(folders):
    domains = [("photo", folders["photo"]), ("anime", folders["anime"])]
    parts = [
        set(MultiDomainDataset(domains, resolution=R, split=s, val_fraction=0.4).paths)
        for s in ("train", "val")
    ]
    everything = set(MultiDomainDataset(domains, resolution=R, split="all").paths)
    assert parts[0] | parts[1] == everything and not parts[0] & parts[1]


# ----------------------------------------------------------------------------- construction


def test_needs_two_domains(folders):
    with pytest.raises(ValueError, match="need at least two datasets, got 1: photo"):
        MultiDomainDataset([("photo", folders["photo"])], resolution=R)


def test_duplicate_domain_names(folders):
    with pytest.raises(ValueError, match="distinct"):
        MultiDomainDataset([("photo", folders["photo"]), ("photo", folders["anime"])], resolution=R)


def test_missing_folder_names_domain_and_path(folders, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=r"'oil'.*folder not found.*nowhere"):
        MultiDomainDataset([("photo", folders["photo"]), ("oil", missing)], resolution=R)


def test_empty_folder_names_domain_and_path(folders, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"'oil'.*no image files.*empty"):
        MultiDomainDataset([("photo", folders["photo"]), ("oil", empty)], resolution=R)


def test_folder_of_only_bad_files(folders, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    (bad / "b.jpg").write_text("text")
    for preload in (True, False):
        with pytest.raises(ValueError, match=r"'oil': no usable image.*2 files of the 'all' split"):
            MultiDomainDataset(
                [("photo", folders["photo"]), ("oil", bad)],
                resolution=R,
                split="all",
                preload=preload,
            )


def test_bad_argument_values(folders):
    domains = [("photo", folders["photo"]), ("anime", folders["anime"])]
    with pytest.raises(ValueError, match="split"):
        MultiDomainDataset(domains, resolution=R, split="test")
    with pytest.raises(ValueError, match="resolution"):
        MultiDomainDataset(domains, resolution=0)


def _train_only_folder(folder: Path, fraction: float, seed: int) -> Path:
    """A folder holding one image whose name falls in the train split."""
    name = next(
        f"only_{i}.png" for i in range(100) if split_of(f"only_{i}.png", fraction) == "train"
    )
    write_valid_faces(folder, 1, 12, seed=seed)[0].rename(folder / name)
    return folder


def test_domain_without_val_images_gets_zero_prior(tmp_path, caplog):
    write_valid_faces(tmp_path / "a", 40, 12, seed=0)
    domains = [("a", tmp_path / "a"), ("b", _train_only_folder(tmp_path / "b", 0.3, 1))]
    with caplog.at_level(logging.WARNING, logger="net2fair.data.datasets"):
        ds = MultiDomainDataset(domains, resolution=8, split="val", val_fraction=0.3)
    assert ds.counts["b"] == 0 and ds.priors["b"] == 0.0 and ds.priors["a"] == 1.0
    assert any("'b' has no image in the 'val' split" in r.getMessage() for r in caplog.records)


def test_split_empty_everywhere_is_an_error(tmp_path):
    domains = [
        ("a", _train_only_folder(tmp_path / "a", 0.3, 1)),
        ("b", _train_only_folder(tmp_path / "b", 0.3, 2)),
    ]
    with pytest.raises(ValueError, match="no image in the 'val' split of any dataset"):
        MultiDomainDataset(domains, resolution=8, split="val", val_fraction=0.3)


# ----------------------------------------------------------------------------- contents


def test_labels_counts_priors_and_order(folders):
    ds = MultiDomainDataset(
        [("photo", folders["photo"]), ("anime", folders["anime"])], resolution=R, split="all"
    )
    assert ds.domain_names == ["photo", "anime"]
    assert len(ds) == 9
    assert ds.labels.dtype == torch.long
    assert ds.labels.tolist() == [0] * 6 + [1] * 3
    assert ds.counts == {"photo": 6, "anime": 3}
    assert ds.priors == pytest.approx({"photo": 2 / 3, "anime": 1 / 3})
    assert ds.relative_paths() == [f"face_{i:05d}.png" for i in range(6)] + [
        f"face_{i:05d}.png" for i in range(3)
    ]
    assert list(ds.indices_of("anime")) == [6, 7, 8]
    image, label = ds[7]
    assert image.shape == (3, R, R) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1
    assert label == 1
    assert ds[-1][1] == 1


def test_bad_files_are_skipped_and_recorded(folders, caplog):
    kinds = folders["kinds"]
    with caplog.at_level(logging.WARNING, logger="net2fair.data.datasets"):
        ds = MultiDomainDataset(
            [("photo", folders["photo"]), ("messy", folders["messy"])],
            resolution=R,
            split="all",
            preload=True,
        )
    messy = [p for p in ds.relative_paths()[6:]]
    assert sorted(messy) == kinds["odd_valid"]
    assert ds.counts["messy"] == len(kinds["odd_valid"])
    skipped = {p.relative_to(folders["messy"]).as_posix() for p, _ in ds.skipped}
    assert set(kinds["bad"]) <= skipped
    assert not skipped & set(kinds["odd_valid"])
    assert all(reason for _, reason in ds.skipped)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")]
    assert len(logged) == len(ds.skipped)
    assert any("empty.jpg: empty file" in m for m in logged)


def test_preload_and_lazy_give_identical_items(folders):
    domains = [("anime", folders["anime"]), ("photo", folders["photo"])]
    eager = MultiDomainDataset(domains, resolution=R, split="all", preload=True)
    lazy = MultiDomainDataset(domains, resolution=R, split="all", preload=False)
    assert eager.preloaded and not lazy.preloaded
    assert eager.paths == lazy.paths
    assert torch.equal(eager.labels, lazy.labels)
    for i in range(len(eager)):
        (x, y), (x2, y2) = eager[i], lazy[i]
        assert y == y2
        assert torch.equal(x, x2)
        assert np.array_equal(eager.get_uint8(i), lazy.get_uint8(i))


def test_lazy_on_bad_inputs_skips_header_problems_up_front(folders):
    domains = [("messy", folders["messy"]), ("photo", folders["photo"])]
    eager = MultiDomainDataset(domains, resolution=R, split="all", preload=True)
    lazy = MultiDomainDataset(domains, resolution=R, split="all", preload=False)
    # Only truncated pixel data escapes the header check; it is caught on first access.
    late = set(lazy.paths) - set(eager.paths)
    assert {p.name for p in late} == {"truncated.png", "truncated.jpg"}
    assert set(eager.paths) <= set(lazy.paths)
    for i, path in enumerate(lazy.paths):
        x = lazy[i][0]
        if path in eager.paths:
            assert torch.equal(x, eager[eager.paths.index(path)][0])
    assert {p for p, _ in eager.skipped} == {p for p, _ in lazy.skipped}


def test_get_uint8_matches_items(folders):
    ds = MultiDomainDataset(
        [("photo", folders["photo"]), ("anime", folders["anime"])], resolution=R, split="all"
    )
    arr = ds.get_uint8(2)
    assert arr.shape == (R, R, 3) and arr.dtype == np.uint8
    assert torch.allclose(torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1, ds[2][0])
    arr[:] = 0  # a copy: the cache must not change
    assert ds.get_uint8(2).any()


def test_auto_preload_for_small_sets(folders):
    ds = MultiDomainDataset(
        [("photo", folders["photo"]), ("anime", folders["anime"])], resolution=R
    )
    assert ds.preloaded


def test_lazy_fallback_to_next_valid_image_of_same_domain(folders, tmp_path, caplog):
    domain = tmp_path / "oil"
    paths = write_valid_faces(domain, 3, 24, seed=5)
    # Header intact, pixel data cut: passes the up-front check, fails when decoded.
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) - 40])
    domains = [("photo", folders["photo"]), ("oil", domain)]
    ds = MultiDomainDataset(domains, resolution=R, split="all", preload=False)
    assert ds.counts["oil"] == 3 and ds.skipped == []
    with caplog.at_level(logging.WARNING, logger="net2fair.data.datasets"):
        first = ds[7]
        again = ds[7]
    assert first[1] == again[1] == 1
    assert torch.equal(first[0], ds[8][0])  # the next image of the same domain
    assert torch.equal(first[0], again[0])
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 1
    assert [p for p, _ in ds.skipped] == [paths[1]]
    eager = MultiDomainDataset(domains, resolution=R, split="all", preload=True)
    assert eager.counts["oil"] == 2


def test_flip_changes_only_some_items_and_follows_the_seed(folders):
    domains = [("photo", folders["photo"]), ("anime", folders["anime"])]
    plain = MultiDomainDataset(domains, resolution=R, split="all")
    flipping = MultiDomainDataset(domains, resolution=R, split="all", flip=True)

    def draw() -> list[bool]:
        flipped = []
        for _ in range(4):
            for i in range(len(plain)):
                x, y = flipping[i]
                ref = plain[i][0]
                if torch.equal(x, ref):
                    flipped.append(False)
                else:
                    assert torch.equal(x, ref.flip(-1))
                    flipped.append(True)
                assert y == plain[i][1]
        return flipped

    torch.manual_seed(0)
    first = draw()
    assert 0.25 < sum(first) / len(first) < 0.75
    torch.manual_seed(0)
    assert draw() == first
    assert all(torch.equal(plain[i][0], plain[i][0]) for i in range(len(plain)))


def test_dataloader_batches(folders):
    ds = MultiDomainDataset(
        [("photo", folders["photo"]), ("anime", folders["anime"])], resolution=R, split="all"
    )
    x, y = next(iter(DataLoader(ds, batch_size=9)))
    assert x.shape == (9, 3, R, R) and y.dtype == torch.long
    assert y.tolist() == ds.labels.tolist()


def test_domain_order_follows_arguments(folders, tmp_path):
    copy = tmp_path / "photo_copy"
    shutil.copytree(folders["photo"], copy)
    ds = MultiDomainDataset(
        [("anime", folders["anime"]), ("photo", copy)], resolution=R, split="all"
    )
    assert ds.labels.tolist() == [0] * 3 + [1] * 6
    assert ds.paths[0].parent == folders["anime"]


def test_a_dataset_with_no_training_image_is_refused(tmp_path: Path):
    """Its prior would be 0, and a model with a zero prior cannot be loaded."""
    from tests.conftest import write_toy_domain

    a = write_toy_domain(tmp_path / "a", "disc", 8)
    b = write_toy_domain(tmp_path / "b", "square", 1)
    name = next(p.name for p in b.iterdir())
    if split_of(name, 0.999) != "val":
        pytest.skip("the single file's hash does not fall in the validation split")
    with pytest.raises(ValueError, match="no image of .* falls in the training split"):
        MultiDomainDataset([("a", a), ("b", b)], resolution=8, split="train", val_fraction=0.999)
