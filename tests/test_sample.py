"""Tests of sfnet.datasets.sample.GalaxySample."""

import json
import pickle

import astropy.units as u
import numpy as np
import pytest
from astropy.table import MaskedColumn, QTable, Table

from sfnet import GalaxySample
from sfnet.datasets import _store
from sfnet.datasets._store import NpyWriter

BIG = 1237648720693755918  # an SDSS objID: beyond float64's exact integers
assert BIG > 2**53


def make_sample(n=6, size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    cat = Table()
    cat["objID"] = np.arange(n, dtype=np.int64) + BIG
    cat["ra"] = np.linspace(10, 20, n) * u.deg
    cat["dec"] = np.linspace(-5, 5, n) * u.deg
    cat["z"] = np.linspace(0.02, 0.2, n)
    cat.meta["survey"] = "SDSS"
    return GalaxySample(images, cat)


@pytest.fixture
def saved(tmp_path):
    s = make_sample(10)
    return s, GalaxySample.load(s.save(tmp_path / "s"))


# ----------------------------------------------------------------- construction
def test_basic_attributes():
    s = make_sample(5)
    assert len(s) == 5
    assert s.image_shape == (8, 8, 3)
    assert s.images.shape == (5, 8, 8, 3)
    assert not s.is_memmap
    r = repr(s)
    assert "5 galaxies" in r and "8x8x3" in r and "in memory" in r and "objID" in r


def test_images_not_copied():
    images = np.zeros((3, 4, 4, 3), np.uint8)
    s = GalaxySample(images, Table({"objID": [1, 2, 3]}))
    assert s.images is images


def test_catalog_is_shallow_copy():
    cat = Table({"objID": [1, 2]})
    s = GalaxySample(np.zeros((2, 4, 4, 3), np.uint8), cat)
    s.catalog["new"] = [1.0, 2.0]
    assert "new" not in cat.colnames


@pytest.mark.parametrize("images, exc, match", [
    (np.zeros((3, 4, 4), np.uint8), ValueError, r"images must have shape \(N, H, W, C\)"),
    (np.zeros((3, 3, 4, 4), np.uint8), ValueError, r"images.*channels first"),
    (np.zeros((3, 4, 4, 0), np.uint8), ValueError, r"images must have at least one channel"),
    (np.zeros((3, 4, 4, 3), np.int16), TypeError, r"images must have dtype uint8.*float.*int16"),
])
def test_bad_images(images, exc, match):
    with pytest.raises(exc, match=match):
        GalaxySample(images, Table({"objID": [1, 2, 3]}))


def test_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match=r"images has 4 rows but catalog has 3"):
        GalaxySample(np.zeros((4, 4, 4, 3), np.uint8), Table({"objID": [1, 2, 3]}))


def test_bad_catalogs():
    img = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(TypeError, match="catalog must be an astropy Table"):
        GalaxySample(img, {"objID": [1, 2]})
    with pytest.raises(ValueError, match="'objID' column"):
        GalaxySample(img, Table({"id": [1, 2]}))
    with pytest.raises(TypeError, match="'objID' must be integer.*float64"):
        GalaxySample(img, Table({"objID": [1.0, 2.0]}))
    with pytest.raises(ValueError, match=f"duplicated.*{BIG}"):
        GalaxySample(img, Table({"objID": [BIG, BIG]}))
    masked = Table({"objID": MaskedColumn([1, 2], mask=[False, True])})
    with pytest.raises(ValueError, match="'objID' has 1 masked"):
        GalaxySample(img, masked)


def test_objid_kept_exactly_and_unsigned_converted():
    img = np.zeros((2, 4, 4, 3), np.uint8)
    s = GalaxySample(img, Table({"objID": np.array([BIG, BIG + 1], dtype=np.uint64)}))
    assert s.catalog["objID"].dtype == np.int64
    assert s.catalog["objID"].tolist() == [BIG, BIG + 1]


# --------------------------------------------------------------------- indexing
def test_slice_int_mask_and_index_array():
    s = make_sample(6)
    sub = s[1:4]
    assert isinstance(sub, GalaxySample)
    assert sub.catalog["objID"].tolist() == [BIG + 1, BIG + 2, BIG + 3]
    assert np.shares_memory(sub.images, s.images)

    one = s[-1]
    assert len(one) == 1 and one.catalog["objID"][0] == BIG + 5
    np.testing.assert_array_equal(one.images[0], s.images[5])

    mask = np.array([True, False, True, False, False, True])
    m = s[mask]
    assert m.catalog["objID"].tolist() == [BIG, BIG + 2, BIG + 5]
    np.testing.assert_array_equal(m.images, s.images[mask])

    idx = s[[4, -6, 2]]  # order kept, negatives wrap
    assert idx.catalog["objID"].tolist() == [BIG + 4, BIG, BIG + 2]
    np.testing.assert_array_equal(idx.images, s.images[[4, 0, 2]])

    assert len(s[[]]) == 0
    assert s[s.catalog["z"] > 0.1].catalog["objID"].tolist() == [BIG + 3, BIG + 4, BIG + 5]


def test_bad_indices():
    s = make_sample(4)
    with pytest.raises(IndexError, match="out of range"):
        s[4]
    with pytest.raises(IndexError, match="out of range"):
        s[[0, 9]]
    with pytest.raises(IndexError, match="boolean mask has length 3 but the sample has 4"):
        s[np.array([True, False, True])]
    with pytest.raises(ValueError, match="repeats rows"):
        s[[1, 1]]
    with pytest.raises(TypeError, match="sample.catalog"):
        s["ra"]
    with pytest.raises(IndexError, match="integers or booleans"):
        s[np.array([0.5])]


def test_memmap_slices_stay_memmapped(saved):
    orig, s = saved
    assert isinstance(s.images, np.memmap) and s.is_memmap
    sl = s[2:7:2]
    assert isinstance(sl.images, np.memmap)
    np.testing.assert_array_equal(sl.images, orig.images[2:7:2])
    # a boolean mask selecting a contiguous run is turned into a slice
    run = s[np.arange(10) >= 5]
    assert isinstance(run.images, np.memmap)
    np.testing.assert_array_equal(run.images, orig.images[5:])


def test_memmap_masks_are_lazy_and_compose(saved):
    orig, s = saved
    mask = np.zeros(10, bool)
    mask[[1, 3, 4, 8, 9]] = True
    sub = s[mask]
    assert sub.is_memmap and "lazy subset" in repr(sub)
    # batches are read without materialising the subset
    np.testing.assert_array_equal(sub.read_images([4, 0]), orig.images[[9, 1]])
    np.testing.assert_array_equal(sub.read_images(slice(1, 3)), orig.images[[3, 4]])
    assert "lazy subset" in repr(sub)
    # a subset of a subset maps back to the right rows
    subsub = sub[[4, 1]]
    assert subsub.catalog["objID"].tolist() == [BIG + 9, BIG + 3]
    np.testing.assert_array_equal(subsub.read_images(), orig.images[[9, 3]])
    # .images materialises once, in memory, with the right content
    assert not isinstance(sub.images, np.memmap)
    np.testing.assert_array_equal(sub.images, orig.images[mask])
    assert sub.images is sub.images
    assert "lazy subset" not in repr(sub)


def test_read_images_in_memory_and_errors():
    s = make_sample(5)
    out = s.read_images([3, 3, 0])  # repeats allowed here
    np.testing.assert_array_equal(out, s.images[[3, 3, 0]])
    out[:] = 0
    assert s.images[3].any()  # a copy
    np.testing.assert_array_equal(s.read_images(), s.images)
    with pytest.raises(IndexError, match="out of range"):
        s.read_images([5])


# ----------------------------------------------------------------------- split
def test_split_deterministic_disjoint_and_sorted():
    s = make_sample(11)
    train, valid = s.split(0.3, seed=42)
    assert len(valid) == round(0.3 * 11) and len(train) == 11 - len(valid)
    tr, va = set(train.catalog["objID"]), set(valid.catalog["objID"])
    assert not tr & va and tr | va == set(s.catalog["objID"])
    for part in (train, valid):
        ids = np.asarray(part.catalog["objID"])
        assert np.all(np.diff(ids) > 0)  # original order
    train2, valid2 = s.split(0.3, seed=42)
    assert list(valid2.catalog["objID"]) == list(valid.catalog["objID"])
    splits = {tuple(s.split(0.3, seed=k)[1].catalog["objID"]) for k in range(6)}
    assert len(splits) > 1
    np.testing.assert_array_equal(valid.images, s.images[np.isin(
        s.catalog["objID"], valid.catalog["objID"])])


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, float("nan")])
def test_split_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction must be strictly between 0 and 1"):
        make_sample(4).split(fraction)


def test_split_fraction_type():
    with pytest.raises(TypeError, match="fraction"):
        make_sample(4).split("0.2")


def _fastai_rule(n, fraction, seed):
    """The paper's splitter, written out independently: reseed the global RNG, permute."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    perm = torch.randperm(n).tolist()
    cut = int(fraction * n)
    return sorted(perm[cut:]), sorted(perm[:cut])


@pytest.fixture(scope="module")
def mock_catalog_sample():
    from sfnet.datasets import make_mock_galaxies

    return make_mock_galaxies(400, image_size=16, seed=5, progress=False)


@pytest.mark.parametrize("target", ["metallicity", "bpt_lines"])
def test_split_paper_reproduces_fastai_random_splitter(mock_catalog_sample, target):
    import torch

    s = mock_catalog_sample.select(target)
    n = len(s)
    assert 50 < n < len(mock_catalog_sample)  # the cuts removed rows: the order is the selection's
    rows = np.arange(n)
    s.catalog["row"] = rows
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    train, valid = s.split(0.2, seed=256, method="paper")
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    expected_train, expected_valid = _fastai_rule(n, 0.2, 256)
    assert list(valid.catalog["row"]) == expected_valid
    assert list(train.catalog["row"]) == expected_train
    assert len(valid) == int(0.2 * n)
    # the rows carry their images and catalog entries along
    np.testing.assert_array_equal(valid.images, s.images[expected_valid])
    np.testing.assert_array_equal(valid.catalog["objID"], s.catalog["objID"][expected_valid])
    # not the NumPy split with another name
    assert list(s.split(0.2, seed=256)[1].catalog["row"]) != expected_valid


@pytest.mark.parametrize("n, fraction, seed", [(9, 0.3, 0), (101, 0.2, 256), (1000, 0.15, 3)])
def test_split_paper_rule_sizes_and_seeds(n, fraction, seed):
    s = make_sample(n, size=2)
    ids = np.asarray(s.catalog["objID"]) - BIG
    train, valid = s.split(fraction, seed=seed, method="paper")
    assert len(valid) == int(fraction * n)  # truncated, as fastai does (9 * 0.3 -> 2)
    expected_train, expected_valid = _fastai_rule(n, fraction, seed)
    assert list(np.asarray(valid.catalog["objID"]) - BIG) == [ids[i] for i in expected_valid]
    assert list(np.asarray(train.catalog["objID"]) - BIG) == [ids[i] for i in expected_train]


def test_split_method_and_seed_checked():
    s = make_sample(5)
    with pytest.raises(ValueError, match="method must be one of"):
        s.split(0.2, method="fastai")
    with pytest.raises(TypeError, match="seed must be an int with method='paper'"):
        s.split(0.2, seed=None, method="paper")
    with pytest.raises(TypeError, match="seed"):
        s.split(0.2, seed=np.random.default_rng(0), method="paper")
    with pytest.raises(ValueError, match="seed must be non-negative"):
        s.split(0.2, seed=-1, method="paper")


# ---------------------------------------------------------------------- select
def line_catalog():
    """Six galaxies; the comments give which cuts each one fails."""
    t = Table()
    t["objID"] = np.arange(6, dtype=np.int64) + BIG
    t["oh_p50"] = [8.9, -9999.0, 9.0, 8.7, 8.8, 9.1]       # row 1 fails
    t["lgm_tot_p50"] = [10.0, 10.0, -1.0, 10.5, 9.5, 11.0]  # row 2 fails
    t["sfr_tot_p50"] = [0.1, 0.2, 0.0, -9999.0, 0.5, -1.0]  # row 3 fails
    t["h_alpha_flux"] = [300.0, 200.0, 2e5, 150.0, 90.0, 50.0]    # row 2: flux >= 1e5
    t["h_alpha_flux_err"] = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0]
    t["h_beta_flux"] = [100.0, 60.0, 50.0, 40.0, 30.0, 20.0]
    t["h_beta_flux_err"] = [5.0, 5.0, 5.0, 5.0, 10.0, 5.0]        # row 4: S/N = 3, fails
    t["oiii_5007_flux"] = [80.0, 70.0, 60.0, 50.0, 40.0, -5.0]    # row 5: negative
    t["oiii_5007_flux_err"] = [5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    t["nii_6584_flux"] = [100.0, 90.0, 80.0, 70.0, 60.0, 50.0]
    t["nii_6584_flux_err"] = [5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    return t


def test_select_metallicity():
    cat = line_catalog()
    images = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    s = GalaxySample(images, cat)
    m = s.select("metallicity")
    # by hand: rows 1, 2, 3 fail
    assert m.catalog["objID"].tolist() == [BIG, BIG + 4, BIG + 5]
    assert m.images[:, 0, 0, 0].tolist() == [0, 4, 5]


def test_select_bpt_adds_log_columns():
    s = GalaxySample(np.zeros((6, 4, 4, 3), np.uint8), line_catalog())
    b = s.select("bpt_lines")
    # by hand: row 2 (Halpha >= 1e5), row 4 (Hbeta S/N = 3), row 5 (negative OIII) fail
    assert b.catalog["objID"].tolist() == [BIG, BIG + 1, BIG + 3]
    for col, flux in [("log_N2", "nii_6584_flux"), ("log_Ha", "h_alpha_flux"),
                      ("log_O3", "oiii_5007_flux"), ("log_Hb", "h_beta_flux")]:
        np.testing.assert_allclose(b.catalog[col], np.log10(b.catalog[flux]))
    assert "log_N2" not in s.catalog.colnames  # the original is untouched


def test_select_column_list_and_errors():
    cat = line_catalog()
    cat["oh_p50"][2] = np.nan
    s = GalaxySample(np.zeros((6, 4, 4, 3), np.uint8), cat)
    assert len(s.select(["oh_p50", "lgm_tot_p50"])) == 5
    with pytest.raises(ValueError, match="no_such_column"):
        s.select("no_such_column")
    with pytest.raises(ValueError, match="nii_6584_flux"):
        GalaxySample(np.zeros((1, 4, 4, 3), np.uint8), Table({"objID": [1]})).select(
            "bpt_lines")


def test_select_on_memmap_is_lazy(tmp_path):
    s = GalaxySample(np.arange(6, dtype=np.uint8)[:, None, None, None]
                     * np.ones((1, 4, 4, 3), np.uint8), line_catalog())
    loaded = GalaxySample.load(s.save(tmp_path / "s"))
    m = loaded.select("metallicity")
    assert m.is_memmap and "lazy subset" in repr(m)
    assert m.read_images()[:, 0, 0, 0].tolist() == [0, 4, 5]


# ---------------------------------------------------------------------- coords
def test_coords_units():
    s = make_sample(3)
    c = s.coords
    np.testing.assert_allclose(c.ra.deg, [10, 15, 20])
    np.testing.assert_allclose(c.dec.deg, [-5, 0, 5])
    # no unit: degrees; explicit unit: converted; QTable Quantity columns
    t = Table({"objID": [1, 2], "ra": [180.0, 90.0], "dec": [0.0, 45.0]})
    c = GalaxySample(np.zeros((2, 4, 4, 3), np.uint8), t).coords
    np.testing.assert_allclose(c.ra.deg, [180, 90])
    t["ra"].unit = u.rad
    t["ra"] = [np.pi, np.pi / 2]
    t["ra"].unit = u.rad
    c = GalaxySample(np.zeros((2, 4, 4, 3), np.uint8), t).coords
    np.testing.assert_allclose(c.ra.deg, [180, 90])
    q = QTable({"objID": [1, 2], "ra": [1.0, 2.0] * u.hourangle, "dec": [0, 1] * u.deg})
    np.testing.assert_allclose(GalaxySample(np.zeros((2, 4, 4, 3), np.uint8), q).coords.ra.deg,
                               [15, 30])


def test_coords_missing_columns():
    s = GalaxySample(np.zeros((1, 4, 4, 3), np.uint8), Table({"objID": [1]}))
    with pytest.raises(ValueError, match="'ra' and 'dec'"):
        _ = s.coords


# ------------------------------------------------------------------- save/load
def test_round_trip(tmp_path):
    s = make_sample(7)
    s.catalog["flux"] = MaskedColumn([1.0, 2, 3, 4, 5, 6, 7], mask=[0, 1, 0, 0, 0, 0, 0],
                                     unit="1e-17 erg / (s cm2)")
    s.catalog.meta["oracle_rmse"] = 0.05
    path = s.save(tmp_path / "sample")
    assert sorted(p.name for p in path.iterdir()) == ["catalog.ecsv", "images.npy",
                                                      "sample.json"]
    manifest = json.loads((path / "sample.json").read_text())
    assert manifest["n"] == 7 and manifest["image_shape"] == [8, 8, 3]
    assert manifest["dtype"] == "uint8" and manifest["version"] == 1

    t = GalaxySample.load(path)
    assert isinstance(t.images, np.memmap) and t.images.mode == "r"
    with pytest.raises(ValueError):
        t.images[0, 0, 0, 0] = 1  # read-only
    np.testing.assert_array_equal(t.images, s.images)
    assert t.catalog["objID"].dtype == np.int64
    assert t.catalog["objID"].tolist() == [BIG + i for i in range(7)]
    assert t.catalog["ra"].unit == u.deg
    assert t.catalog["flux"].unit == u.Unit("1e-17 erg / (s cm2)")
    assert t.catalog["flux"].mask.tolist() == [False, True] + [False] * 5
    assert t.catalog.meta["survey"] == "SDSS" and t.catalog.meta["oracle_rmse"] == 0.05

    m = GalaxySample.load(path, mmap=False)
    assert not isinstance(m.images, np.memmap)
    np.testing.assert_array_equal(m.images, s.images)


def test_qtable_round_trip(tmp_path):
    q = QTable({"objID": [BIG, BIG + 1], "ra": [1.0, 2.0] * u.deg})
    s = GalaxySample(np.ones((2, 4, 4, 3), np.uint8), q)
    t = GalaxySample.load(s.save(tmp_path / "q"))
    assert isinstance(t.catalog, QTable)
    assert isinstance(t.catalog["ra"], u.Quantity)


def test_save_lazy_memmap_subset_in_chunks(tmp_path, monkeypatch):
    orig, s = make_sample(10), None
    s = GalaxySample.load(orig.save(tmp_path / "a"))
    sub = s[[9, 0, 5, 6]]
    monkeypatch.setattr(_store, "CHUNK_BYTES", 1)  # one image per chunk
    calls = []
    real = GalaxySample.read_images

    def spy(self, index=None):
        out = real(self, index)
        calls.append(len(out))
        return out

    monkeypatch.setattr(GalaxySample, "read_images", spy)
    back = GalaxySample.load(sub.save(tmp_path / "b"))
    assert calls == [1, 1, 1, 1]
    assert "lazy subset" in repr(sub)
    np.testing.assert_array_equal(back.images, orig.images[[9, 0, 5, 6]])
    assert back.catalog["objID"].tolist() == [BIG + 9, BIG, BIG + 5, BIG + 6]


def test_save_refuses_to_clobber(tmp_path):
    s = make_sample(2)
    (tmp_path / "empty").mkdir()
    s.save(tmp_path / "empty")  # an empty directory is fine
    with pytest.raises(FileExistsError, match="overwrite=True"):
        s.save(tmp_path / "empty")
    s[:1].save(tmp_path / "empty", overwrite=True)
    assert len(GalaxySample.load(tmp_path / "empty")) == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a saved sample"):
        s.save(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_onto_a_file_is_the_one_not_a_directory_error(tmp_path):
    from sfnet._io import NotADirectoryPathError, check_output_dir

    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(NotADirectoryPathError,
                           match=r"path '.*a_file' exists and is not a directory") as err:
            make_sample(2).save(a_file, overwrite=overwrite)
        # what GalaxySample.save raised before, what the OS raises, and a bad argument
        assert isinstance(err.value, FileExistsError)
        assert isinstance(err.value, NotADirectoryError) and isinstance(err.value, ValueError)
    assert a_file.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]
    with pytest.raises(NotADirectoryError, match="--output '.*a_file' exists"):
        check_output_dir(a_file, "--output")
    assert check_output_dir(tmp_path, "x") == tmp_path
    assert check_output_dir(tmp_path / "new", "x") == tmp_path / "new"


def test_save_failure_leaves_nothing(tmp_path):
    s = make_sample(2)
    s.catalog.meta["bad"] = object()  # not serialisable to ECSV
    with pytest.raises(Exception, match="cannot represent"):  # a yaml error
        s.save(tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("missing", ["catalog.ecsv", "images.npy", "sample.json"])
def test_load_missing_file(saved, tmp_path, missing):
    path = tmp_path / "s"
    (path / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        GalaxySample.load(path)


def test_load_errors(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        GalaxySample.load(tmp_path / "nowhere")
    path = tmp_path / "s"
    cat = Table.read(path / "catalog.ecsv")
    cat[:3].write(path / "catalog.ecsv", overwrite=True)
    with pytest.raises(ValueError, match="catalog.ecsv has 3 rows but .*images.npy has 10"):
        GalaxySample.load(path)
    manifest = json.loads((path / "sample.json").read_text())
    manifest["n"] = 11
    (path / "sample.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="sample.json says"):
        GalaxySample.load(path)
    manifest["version"] = 99
    (path / "sample.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format version 99"):
        GalaxySample.load(path)


def test_npy_writer_shrinks_header(tmp_path):
    f = tmp_path / "a.npy"
    rows = np.arange(2 * 3 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 3)
    with open(f, "wb") as fh:
        w = NpyWriter(fh, 1000, (3, 3, 3), np.uint8)
        w.write(rows)
        w.close()
    back = np.load(f, mmap_mode="r")
    assert back.shape == (2, 3, 3, 3)
    np.testing.assert_array_equal(back, rows)


def test_pickle_memmap_by_reference(saved):
    import pickle

    orig, s = saved
    for sub in (s, s[2:9:3], s[::-1], s[[7, 2, 5]], s.select(["z"])[1:4], s[:0]):
        blob = pickle.dumps(sub)
        assert len(blob) < 4000  # the images (192 bytes each) are not in it
        back = pickle.loads(blob)
        assert back.is_memmap or len(sub) == 0
        assert back.catalog["objID"].tolist() == sub.catalog["objID"].tolist()
        np.testing.assert_array_equal(back.read_images(), sub.read_images())


def test_pickle_in_memory():
    import pickle

    s = make_sample(3)
    back = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(back.images, s.images)
    assert back.catalog["objID"].tolist() == s.catalog["objID"].tolist()


def test_image_store_of_lazy_subset(saved):
    orig, s = saved
    sub = s.split(0.4, seed=1)[0]
    array, rows = sub.image_store()
    assert array is s.images  # the whole file, not a copy
    assert rows.dtype == np.int64 and len(rows) == len(sub)
    np.testing.assert_array_equal(array[rows], sub.read_images())
    assert "lazy subset" in repr(sub)


# ------------------------------------------------------- pandas and QTable catalogs
def _mock_catalog(n=40, seed=3):
    from sfnet.datasets import make_mock_galaxies

    s = make_mock_galaxies(n, image_size=16, seed=seed, progress=False)
    return s.images, s.catalog


def test_dataframe_catalog_converted_with_units():
    pd = pytest.importorskip("pandas")
    images = np.zeros((3, 4, 4, 3), np.uint8)
    df = pd.DataFrame({"objID": np.arange(3, dtype=np.int64) + BIG,
                       "ra": [150.0, 150.1, 150.2], "dec": [2.0, 2.1, 2.2],
                       "oh_p50": [8.9, -9999.0, 9.1], "h_alpha_flux": [120.0, 80.0, np.nan],
                       "my_column": [1, 2, 3], "name": ["a", "b", "c"]})
    s = GalaxySample(images, df)
    cat = s.catalog
    assert isinstance(cat, Table)
    assert cat["objID"].dtype == np.int64
    assert cat["objID"].tolist() == [BIG, BIG + 1, BIG + 2]  # not rounded through float
    # known columns get the schema's units and descriptions; unknown ones are left alone
    assert cat["ra"].unit == u.deg and cat["dec"].unit == u.deg
    assert cat["oh_p50"].unit == u.dex
    assert cat["h_alpha_flux"].unit == u.Unit("1e-17 erg / (s cm2)")
    assert "12 + log(O/H)" in cat["oh_p50"].description
    assert cat["my_column"].unit is None and cat["name"].tolist() == ["a", "b", "c"]
    # NaN is missing (masked), as in astropy's from_pandas
    assert cat["h_alpha_flux"].mask.tolist() == [False, False, True]
    np.testing.assert_allclose(s.coords.ra.deg, [150.0, 150.1, 150.2])
    # the DataFrame itself is untouched
    assert list(df.columns)[:2] == ["objID", "ra"] and df["oh_p50"].iloc[1] == -9999.0


def test_dataframe_objid_index_strings_and_errors():
    pd = pytest.importorskip("pandas")
    img = np.zeros((2, 4, 4, 3), np.uint8)
    # objID as the (named) index, e.g. after read_csv(..., index_col="objID")
    df = pd.DataFrame({"objID": [BIG + 1, BIG], "z": [0.1, 0.2]}).set_index("objID")
    s = GalaxySample(img, df)
    assert s.catalog["objID"].tolist() == [BIG + 1, BIG]
    assert s.catalog["z"].tolist() == [0.1, 0.2]
    # objID read as strings to keep all digits: converted exactly
    s = GalaxySample(img, pd.DataFrame({"objID": [str(BIG), str(BIG + 7)]}, dtype=str))
    assert s.catalog["objID"].dtype == np.int64
    assert s.catalog["objID"].tolist() == [BIG, BIG + 7]
    s = GalaxySample(img, Table({"objID": np.array([str(BIG), "12"])}))  # Tables too
    assert s.catalog["objID"].tolist() == [BIG, 12]
    with pytest.raises(TypeError, match="'objID' must be integer.*float64"):
        GalaxySample(img, pd.DataFrame({"objID": [float(BIG), 1.0]}))
    with pytest.raises(TypeError, match="'objID' must be integer \\(or strings of digits\\)"):
        GalaxySample(img, pd.DataFrame({"objID": ["12", "12.5"]}))
    with pytest.raises(TypeError, match="'objID' must be integer \\(or strings"):
        GalaxySample(img, Table({"objID": np.array([1, 2.5], dtype=object)}))
    with pytest.raises(ValueError, match="'objID' has 1 masked"):
        GalaxySample(img, pd.DataFrame({"objID": pd.array([BIG, None], dtype="Int64")}))
    with pytest.raises(ValueError, match="'objID' column"):
        GalaxySample(img, pd.DataFrame({"id": [1, 2]}))
    with pytest.raises(ValueError, match="images has 2 rows but catalog has 3"):
        GalaxySample(img, pd.DataFrame({"objID": [1, 2, 3]}))
    with pytest.raises(TypeError, match="string column names"):
        GalaxySample(img, pd.DataFrame({"objID": [1, 2], 0: [3, 4]}))


def test_to_pandas_round_trip_keeps_ids_units_and_order():
    pd = pytest.importorskip("pandas")
    s = make_sample(6)
    s.catalog["flux"] = MaskedColumn(np.arange(6.0), mask=[0, 1, 0, 0, 0, 0],
                                     unit="1e-17 erg / (s cm2)")
    s.catalog["n"] = MaskedColumn(np.arange(6), mask=[0, 1, 0, 0, 0, 0])
    sub = s[[5, 1, 3]]
    df = sub.to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert df["objID"].dtype == np.int64
    assert df["objID"].tolist() == [BIG + 5, BIG + 1, BIG + 3]  # row i is image i
    assert list(df.index) == [0, 1, 2]
    units = {k: u.Unit(v) for k, v in df.attrs["units"].items()}
    assert units == {"ra": u.deg, "dec": u.deg, "flux": u.Unit("1e-17 erg / (s cm2)")}
    assert df["flux"].isna().tolist() == [False, True, False]
    assert str(df["n"].dtype) == "Int64" and df["n"].isna().tolist() == [False, True, False]

    back = GalaxySample(sub.images, df)
    assert back.catalog["objID"].tolist() == sub.catalog["objID"].tolist()
    assert back.catalog["ra"].unit == u.deg
    assert back.catalog["flux"].unit == u.Unit("1e-17 erg / (s cm2)")
    np.testing.assert_array_equal(back.images, sub.images)

    by_id = s.to_pandas(index="objID")
    assert by_id.index.name == "objID" and by_id.loc[BIG + 2, "z"] == s.catalog["z"][2]
    with pytest.raises(ValueError, match="'nope' is not in the catalog"):
        s.to_pandas(index="nope")
    s.catalog["vec"] = np.zeros((6, 2))
    with pytest.raises(ValueError, match=r"\['vec'\] are multidimensional"):
        s.to_pandas()


def test_qtable_catalog_select_and_to_pandas():
    images, cat = _mock_catalog()
    q = QTable(cat)
    assert isinstance(q["oh_p50"], u.Quantity)
    s = GalaxySample(images, q)
    assert isinstance(s.catalog, QTable)
    plain = GalaxySample(images, cat)
    for target in ("metallicity", "bpt_lines"):
        assert (s.select(target).catalog["objID"].tolist()
                == plain.select(target).catalog["objID"].tolist())
    pytest.importorskip("pandas")
    df = s.to_pandas()
    assert df["objID"].tolist() == cat["objID"].tolist()
    np.testing.assert_allclose(df["oh_p50"], np.asarray(cat["oh_p50"]))
    assert df.attrs["units"]["oh_p50"] == "dex"


def test_dataframe_from_mock_selects_like_the_table():
    pytest.importorskip("pandas")
    images, cat = _mock_catalog()
    df = GalaxySample(images, cat).to_pandas()
    df.attrs.clear()  # as if read from a CSV file: units come from the schema
    s = GalaxySample(images, df)
    for name in ("ra", "oh_p50", "lgm_tot_p50", "h_alpha_flux", "petroMag_r"):
        assert s.catalog[name].unit == cat[name].unit, name
    for target in ("metallicity", "bpt_lines"):
        a = s.select(target).catalog
        b = GalaxySample(images, cat).select(target).catalog
        assert a["objID"].tolist() == b["objID"].tolist()


def test_to_pandas_without_pandas(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match=r"sfnet\[pandas\]"):
        make_sample(2).to_pandas()


# --------------------------------------------------------------- any ID column, any channels
@pytest.mark.parametrize("ids", [["NGC 1", "NGC 2", "M 31"], [39627000000000001, 7, 12]])
@pytest.mark.parametrize("channels, dtype", [(1, np.uint8), (3, np.float32), (5, np.float32)])
def test_any_id_column_and_channels_round_trip(tmp_path, ids, channels, dtype):
    rng = np.random.default_rng(0)
    images = (rng.normal(size=(3, 6, 6, channels)) * 50).astype(dtype)
    s = GalaxySample(images, Table({"TARGETID": ids, "ra": [1., 2., 3.]}),
                     id_column="TARGETID")
    assert s.id_column == "TARGETID" and s.n_channels == channels
    assert s.ids.tolist() == ids
    assert s[1:].id_column == "TARGETID" and s[[2, 0]].ids.tolist() == [ids[2], ids[0]]
    loaded = GalaxySample.load(s.save(tmp_path / "s"))
    assert loaded.id_column == "TARGETID"
    assert loaded.ids.tolist() == ids
    assert loaded.images.dtype == dtype and np.array_equal(loaded.images, images)
    assert pickle.loads(pickle.dumps(loaded[[0, 2]])).id_column == "TARGETID"


def test_string_ids_never_through_float_and_checked():
    img = np.zeros((2, 4, 4, 1), np.float32)
    # digits stay strings in a non-default column (leading zeros kept)
    s = GalaxySample(img, Table({"name": ["007", "12"]}), id_column="name")
    assert s.ids.tolist() == ["007", "12"]
    s = GalaxySample(img, Table({"name": np.array([b"a", b"b"])}), id_column="name")
    assert s.ids.tolist() == ["a", "b"]
    with pytest.raises(TypeError, match="'name' must be integer or string.*float64"):
        GalaxySample(img, Table({"name": [1.0, 2.0]}), id_column="name")
    with pytest.raises(TypeError, match="'name' must hold integers or strings"):
        GalaxySample(img, Table({"name": np.array([1, "a"], dtype=object)}), id_column="name")
    with pytest.raises(ValueError, match="'name' has 1 duplicated value.*x"):
        GalaxySample(img, Table({"name": ["x", "x"]}), id_column="name")
    with pytest.raises(ValueError, match="'name' has 1 empty ID"):
        GalaxySample(img, Table({"name": ["x", " "]}), id_column="name")
    with pytest.raises(ValueError, match="'name' column"):
        GalaxySample(img, Table({"objID": [1, 2]}), id_column="name")
    with pytest.raises(TypeError, match="id_column"):
        GalaxySample(img, Table({"objID": [1, 2]}), id_column=3)


def test_saved_sample_without_id_column_entry_loads_as_objid(tmp_path):
    import json

    path = GalaxySample(np.zeros((2, 4, 4, 3), np.uint8), Table({"objID": [1, 2]})).save(
        tmp_path / "s")
    manifest = json.loads((path / "sample.json").read_text())
    assert manifest["id_column"] == "objID"
    del manifest["id_column"]
    (path / "sample.json").write_text(json.dumps(manifest))
    assert GalaxySample.load(path).id_column == "objID"
