"""Tests of sfnet.datasets.folder: the Zenodo-layout loader, its cache and writer."""

import os
import weakref

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

import sfnet
from sfnet import GalaxySample
from sfnet.datasets import folder as folder_mod
from sfnet.datasets import load_galaxy_folder, write_galaxy_folder
from sfnet.exceptions import DataDroppedWarning

BIG = 1237648720693755918
SIZE = 32
N = 12
# rows damaged by `damaged_folder`
MISSING, TRUNCATED, CORRUPT, GRAY, RGBA, SMALL = 1, 3, 4, 6, 8, 10


def smooth_images(n, size=SIZE, seed=0):
    """Smooth colour gradients (JPEG keeps them to a few counts)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(40, 200, size=(n, 1, 1, 3))
    slope = rng.uniform(-40, 40, size=(n, 1, 1, 3))
    img = base + slope * (xx + yy)[None, :, :, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def make_sample(n=N, size=SIZE):
    cat = Table()
    cat["objID"] = BIG + np.arange(n, dtype=np.int64) * 7
    cat["specObjID"] = 2947691243863304192 + np.arange(n, dtype=np.int64)
    cat["ra"] = np.linspace(150.0, 151.0, n)
    cat["dec"] = np.linspace(2.0, 2.5, n)
    cat["oh_p50"] = np.linspace(8.6, 9.2, n)
    cat["h_alpha_flux"] = np.linspace(100, 300, n)
    cat["bptclass"] = np.ones(n, dtype=np.int64)
    return GalaxySample(smooth_images(n, size), cat)


def jpg(folder, objid):
    return folder / "images-sdss" / f"{objid}.jpg"


@pytest.fixture
def sample():
    return make_sample()


@pytest.fixture
def damaged_folder(tmp_path, sample):
    """A Zenodo-layout folder with a missing, a truncated, a corrupt, a grayscale,
    an RGBA (PNG) and a smaller image."""
    path = write_galaxy_folder(sample, tmp_path / "data")
    ids = sample.catalog["objID"]
    jpg(path, ids[MISSING]).unlink()
    data = jpg(path, ids[TRUNCATED]).read_bytes()
    jpg(path, ids[TRUNCATED]).write_bytes(data[:len(data) // 2])
    jpg(path, ids[CORRUPT]).write_bytes(os.urandom(500))
    Image.fromarray(np.full((SIZE, SIZE), 77, np.uint8)).save(jpg(path, ids[GRAY]),
                                                              format="JPEG", quality=95)
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 128
    Image.fromarray(rgba).save(jpg(path, ids[RGBA]), format="PNG")
    Image.fromarray(smooth_images(1, 24)[0]).save(jpg(path, ids[SMALL]), format="JPEG")
    return path


@pytest.fixture
def cache_dir(tmp_path):
    with sfnet.conf.set_temp("cache_dir", str(tmp_path / "cache")):
        yield tmp_path / "cache"


def load_one_warning(*args, **kwargs):
    kwargs.setdefault("progress", False)
    with pytest.warns(DataDroppedWarning) as rec:
        out = load_galaxy_folder(*args, **kwargs)
    dropped = [w for w in rec if issubclass(w.category, DataDroppedWarning)]
    assert len(dropped) == 1
    return out, dropped[0].message


# ------------------------------------------------------------------ round trip
def test_write_then_load_round_trip(tmp_path, sample, cache_dir):
    path = write_galaxy_folder(sample, tmp_path / "data")
    assert (path / "galaxies.csv").is_file()
    assert len(list((path / "images-sdss").glob("*.jpg"))) == N
    assert not list(path.rglob(".*tmp"))
    with Image.open(jpg(path, BIG)) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (SIZE, SIZE)

    loaded = load_galaxy_folder(path, progress=False)
    assert isinstance(loaded.images, np.memmap)
    assert loaded.catalog["objID"].dtype == np.int64
    assert loaded.catalog["objID"].tolist() == sample.catalog["objID"].tolist()
    assert loaded.catalog["specObjID"].tolist() == sample.catalog["specObjID"].tolist()
    assert loaded.catalog.colnames == sample.catalog.colnames
    assert loaded.catalog["ra"].unit == u.deg
    assert loaded.catalog["h_alpha_flux"].unit == u.Unit("1e-17 erg / (s cm2)")
    assert loaded.catalog["bptclass"].unit is None
    np.testing.assert_allclose(loaded.catalog["oh_p50"], sample.catalog["oh_p50"])
    err = np.abs(loaded.images.astype(int) - sample.images.astype(int))
    assert err.mean() < 2 and err.max() < 20  # JPEG quality 95


def test_write_refuses_existing_csv(tmp_path, sample):
    path = write_galaxy_folder(sample, tmp_path / "data")
    with pytest.raises(FileExistsError, match="galaxies.csv"):
        write_galaxy_folder(sample, path)
    write_galaxy_folder(sample[:3], path, overwrite=True)
    assert len(Table.read(path / "galaxies.csv")) == 3
    with pytest.raises(TypeError, match="GalaxySample"):
        write_galaxy_folder(sample.images, path)
    with pytest.raises(ValueError, match="quality"):
        write_galaxy_folder(sample, path, quality=100, overwrite=True)


# --------------------------------------------------------- damaged image folders
def test_damaged_images_dropped_with_one_warning(damaged_folder, sample):
    loaded, warning = load_one_warning(damaged_folder, cache=False)
    ids = sample.catalog["objID"]
    bad = [MISSING, TRUNCATED, CORRUPT, SMALL]
    keep = [i for i in range(N) if i not in bad]
    assert loaded.catalog["objID"].tolist() == [ids[i] for i in keep]
    msg = str(warning)
    assert f"dropped 4 of {N} galaxies" in msg
    assert "1 missing" in msg and "2 unreadable" in msg and "1 wrong size" in msg
    assert str(ids[MISSING]) in msg  # the first objIDs are named
    assert "truncated" in msg.lower()
    assert warning.objids.tolist() == [ids[i] for i in bad]
    assert len(warning.reasons) == 4 and "24x24" in warning.reasons[3]

    assert loaded.images.shape == (len(keep), SIZE, SIZE, 3)
    gray = loaded.images[keep.index(GRAY)]
    assert np.all(gray[..., 0] == gray[..., 1]) and np.all(gray[..., 1] == gray[..., 2])
    assert abs(int(gray[0, 0, 0]) - 77) <= 2
    np.testing.assert_array_equal(loaded.images[keep.index(RGBA)][5, 5], [200, 100, 50])
    ok = keep.index(0)
    assert np.abs(loaded.images[ok].astype(int) - sample.images[0].astype(int)).mean() < 2


def opened_files(monkeypatch):
    """Record every file PIL opens (path arguments of `PIL.Image.open`)."""
    opened = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(os.fspath(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return opened


def test_each_image_is_opened_once(damaged_folder, monkeypatch):
    opened = opened_files(monkeypatch)
    loaded, warning = load_one_warning(damaged_folder, cache=False)
    assert len(opened) == N - 1  # every existing file once (one is missing)
    assert len(set(opened)) == len(opened)
    assert len(loaded) == N - 4


@pytest.mark.parametrize("cache", [False, True])
def test_majority_size_differs_from_the_first_image(tmp_path, cache, cache_dir, monkeypatch):
    """The first readable image is of a minority size: the majority is kept all the same."""
    n = 8
    sample = make_sample(n)
    path = write_galaxy_folder(sample, tmp_path / "d")
    ids = sample.catalog["objID"]
    small = smooth_images(3, 24, seed=5)
    for i, row in enumerate((0, 2, 5)):  # three 24 px images, the first one first
        Image.fromarray(small[i]).save(jpg(path, ids[row]), format="JPEG", quality=95)
    jpg(path, ids[1]).write_bytes(b"not an image")
    opened = opened_files(monkeypatch)
    loaded, warning = load_one_warning(path, cache=cache)
    keep = [3, 4, 6, 7]
    assert loaded.catalog["objID"].tolist() == [ids[i] for i in keep]
    assert loaded.image_shape == (SIZE, SIZE, 3)
    err = np.abs(loaded.read_images().astype(int) - sample.images[keep].astype(int))
    assert err.mean() < 2
    assert warning.objids.tolist() == [ids[i] for i in (0, 1, 2, 5)]
    assert [r.split(":")[0] for r in warning.reasons] == [
        "wrong size", "unreadable", "wrong size", "wrong size"]
    assert f"is 24x24, not {SIZE}x{SIZE}" in warning.reasons[0]
    # every file once, then the images of the majority size a second time
    assert len(opened) == n + len(keep)


def test_size_tie_goes_to_the_first_image(tmp_path):
    sample = make_sample(4)
    path = write_galaxy_folder(sample, tmp_path / "d")
    ids = sample.catalog["objID"]
    for row in (1, 3):
        Image.fromarray(smooth_images(1, 24)[0]).save(jpg(path, ids[row]), format="JPEG")
    loaded, warning = load_one_warning(path, cache=False)
    assert loaded.catalog["objID"].tolist() == [ids[0], ids[2]]
    assert warning.objids.tolist() == [ids[1], ids[3]]


def test_image_size_resizes_everything(damaged_folder, sample):
    loaded, warning = load_one_warning(damaged_folder, cache=False, image_size=16)
    assert loaded.image_shape == (16, 16, 3)
    assert len(warning.objids) == 3  # the small image is now resized and kept
    assert sample.catalog["objID"][SMALL] in loaded.catalog["objID"]


def test_custom_layout_names(tmp_path, sample):
    path = write_galaxy_folder(sample, tmp_path / "d", image_dir="jpegs", catalog="cat.csv")
    loaded = load_galaxy_folder(path, image_dir="jpegs", catalog="cat.csv", cache=False,
                                image_size=(20, 10), progress=True)
    assert loaded.image_shape == (20, 10, 3) and len(loaded) == N


def test_all_images_unusable(tmp_path, sample):
    path = write_galaxy_folder(sample[:2], tmp_path / "d")
    for f in (path / "images-sdss").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="no usable image.*2 missing"):
        load_galaxy_folder(path, cache=False, progress=False)


# ----------------------------------------------------------------------- cache
def test_cache_reused_then_invalidated(damaged_folder, sample, cache_dir, monkeypatch):
    first, _ = load_one_warning(damaged_folder)
    keyed = list((cache_dir / "folders").iterdir())
    assert len(keyed) == 1 and (keyed[0] / "sample.json").is_file()
    assert isinstance(first.images, np.memmap)
    # the cache is an ordinary saved sample
    np.testing.assert_array_equal(GalaxySample.load(keyed[0]).images, first.images)

    calls = []
    real_decode = folder_mod._decode_image

    def counting_decode(*args, **kwargs):
        calls.append(args[0])
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(folder_mod, "_decode_image", counting_decode)
    second, warning = load_one_warning(damaged_folder)  # the warning is repeated
    assert calls == []
    assert isinstance(second.images, np.memmap)
    assert second.catalog["objID"].tolist() == first.catalog["objID"].tolist()
    np.testing.assert_array_equal(second.images, first.images)
    assert f"dropped 4 of {N}" in str(warning)

    # change one image: the folder is decoded again and the new pixels appear
    target = jpg(damaged_folder, sample.catalog["objID"][0])
    Image.fromarray(np.full((SIZE, SIZE, 3), 250, np.uint8)).save(target, format="JPEG")
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third, _ = load_one_warning(damaged_folder)
    assert len(calls) > 0
    assert third.images[0].min() >= 245
    assert len(list((cache_dir / "folders").iterdir())) == 2
    assert not [p for p in (cache_dir / "folders").iterdir() if p.name.startswith(".")]


def test_csv_change_invalidates_cache(tmp_path, sample, cache_dir):
    path = write_galaxy_folder(sample, tmp_path / "d")
    a = load_galaxy_folder(path, progress=False)
    write_galaxy_folder(sample[:5], path, overwrite=True)
    b = load_galaxy_folder(path, progress=False)
    assert len(a) == N and len(b) == 5


def test_explicit_cache_path(tmp_path, sample, monkeypatch):
    path = write_galaxy_folder(sample, tmp_path / "d")
    where = tmp_path / "mycache"
    a = load_galaxy_folder(path, cache=where, progress=False)
    assert len(GalaxySample.load(where)) == N

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folder_mod, "_decode_image", fail)
    b = load_galaxy_folder(path, cache=where, progress=False)
    np.testing.assert_array_equal(a.images, b.images)
    monkeypatch.undo()
    # a different folder with the same cache path replaces it
    other = write_galaxy_folder(sample[:4], tmp_path / "e")
    c = load_galaxy_folder(other, cache=where, progress=False)
    assert len(c) == 4 and len(GalaxySample.load(where)) == 4
    # a non-empty directory that is not a sample is never replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    with pytest.raises(FileExistsError, match="mine"):
        load_galaxy_folder(path, cache=mine, progress=False)
    assert (mine / "thesis.tex").exists()


def test_decoding_holds_a_bounded_number_of_images(tmp_path, monkeypatch):
    n = 40
    path = write_galaxy_folder(make_sample(n, 8), tmp_path / "d")
    live, peak = [0], [0]
    real = folder_mod._decode_image

    def tracked(*args, **kwargs):
        arr = real(*args, **kwargs).copy()
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        weakref.finalize(arr, lambda: live.__setitem__(0, live[0] - 1))
        return arr

    monkeypatch.setattr(folder_mod, "_decode_image", tracked)
    monkeypatch.setattr(folder_mod, "_IN_FLIGHT_PER_WORKER", 2)
    out = load_galaxy_folder(path, cache=tmp_path / "c", n_workers=2, progress=False)
    assert len(out) == n
    assert peak[0] <= 2 * 2 + 2  # the window plus the one being written


# ---------------------------------------------------------------------- errors
def test_missing_paths(tmp_path, sample):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_galaxy_folder(tmp_path / "nowhere")
    path = write_galaxy_folder(sample, tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="other.csv"):
        load_galaxy_folder(path, catalog="other.csv")
    with pytest.raises(FileNotFoundError, match="images-legacy"):
        load_galaxy_folder(path, image_dir="images-legacy")


def write_csv(path, text):
    (path / "images-sdss").mkdir(parents=True, exist_ok=True)
    (path / "galaxies.csv").write_text(text)
    return path


@pytest.mark.parametrize("text, match", [
    ("id,ra\n1,2.0\n", r"no 'objID' column.*\['id', 'ra'\]"),
    (f"objID,ra\n{BIG},1.0\n{BIG + 1},2.0\n{BIG},3.0\n", f"duplicated objID.*{BIG}"),
    (f"objID,ra\n{BIG},1.0\nabc,2.0\n", "not 64-bit integers.*row 2: 'abc'"),
    ("objID,ra\n1.237648720693756e18,1.0\n", "not 64-bit integers"),
    (f"objID,ra\n{BIG},1.0\n,2.0\n", "empty objID.*row"),
    ("", "is empty"),
])
def test_bad_csv(tmp_path, text, match):
    path = write_csv(tmp_path / "d", text)
    with pytest.raises(ValueError, match=match):
        load_galaxy_folder(path, cache=False, progress=False)


def test_objid_parsed_exactly(tmp_path):
    # neighbours beyond 2**53 collapse to one value through float
    ids = [BIG, BIG + 1, BIG + 2]
    assert len({float(i) for i in ids}) < 3
    path = write_csv(tmp_path / "d", "objID,ra,dec\n" + "".join(
        f"{i},1.0,2.0\n" for i in ids))
    for i in ids:
        Image.fromarray(smooth_images(1, 8)[0]).save(jpg(path, i), format="JPEG")
    out = load_galaxy_folder(path, cache=False, progress=False)
    assert out.catalog["objID"].tolist() == ids


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"image_size": 0}, ValueError, "image_size"),
    ({"image_size": (10,)}, TypeError, "image_size"),
    ({"image_size": 1.5}, TypeError, "image_size"),
    ({"n_workers": 0}, ValueError, "n_workers"),
    ({"cache": 3}, TypeError, "cache"),
])
def test_bad_arguments(tmp_path, sample, kwargs, exc, match):
    path = write_galaxy_folder(sample[:2], tmp_path / "d")
    with pytest.raises(exc, match=match):
        load_galaxy_folder(path, progress=False, **kwargs)


# ------------------------------------------------------ your own folders: IDs, formats, bands
def own_sample(ids, channels, dtype, size=8, seed=1):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        images = smooth_images(len(ids), size, seed)[..., :channels]
        if channels == 1:
            images = smooth_images(len(ids), size, seed)[..., :1]
    else:
        images = rng.lognormal(size=(len(ids), size, size, channels)).astype(dtype)
    cat = Table({"TARGETID": ids, "z": np.linspace(0.01, 0.1, len(ids))})
    return GalaxySample(images, cat, id_column="TARGETID")


@pytest.mark.parametrize("ids", [["NGC 1", "J1200+0100", "007"],
                                 [39627835438549025, 39627835438549026, 12]])
@pytest.mark.parametrize("fmt, channels, dtype, exact", [
    ("jpg", 3, np.uint8, False), ("png", 1, np.uint8, True), ("png", 3, np.uint8, True),
    ("fits", 1, np.float32, True), ("fits", 3, np.float32, True),
    ("fits.gz", 5, np.float32, True)])
def test_own_folder_round_trip(tmp_path, ids, fmt, channels, dtype, exact):
    s = own_sample(ids, channels, dtype)
    path = write_galaxy_folder(s, tmp_path / "d", format=fmt, image_dir="imgs")
    suffix = "." + fmt
    assert sorted(p.name for p in (path / "imgs").iterdir()) == sorted(
        f"{i}{suffix}" for i in ids)
    # folder.json records id column, image folder and suffix: no arguments needed
    loaded = load_galaxy_folder(path, cache=tmp_path / "c", progress=False)
    assert loaded.id_column == "TARGETID" and loaded.ids.tolist() == ids
    assert loaded.image_shape == (8, 8, channels)
    assert loaded.images.dtype == (np.uint8 if fmt in ("jpg", "png") else np.float32)
    if exact:
        np.testing.assert_array_equal(loaded.images, s.images)
    else:
        assert np.abs(loaded.images.astype(int) - s.images.astype(int)).mean() < 3
    again = GalaxySample.load(loaded.save(tmp_path / "saved"))
    assert again.id_column == "TARGETID" and again.ids.tolist() == ids
    np.testing.assert_array_equal(again.images, loaded.images)


def test_fits_layouts_orientation_and_extension(tmp_path):
    from astropy.io import fits

    img = tmp_path / "d" / "images"
    img.mkdir(parents=True)
    cube = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)  # (bands, H, W)
    fits.PrimaryHDU(cube).writeto(img / "a.fits")
    # an empty primary HDU, the image in the first extension, stored as int16 + BSCALE
    hdu = fits.ImageHDU(cube.astype(np.int16))
    hdu.scale("int16", bscale=0.5)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(img / "b.fit")
    Table({"name": ["a", "b"]}).write(tmp_path / "d" / "galaxies.csv")
    s = load_galaxy_folder(tmp_path / "d", image_dir="images", id_column="name",
                           cache=False, progress=False)
    assert s.image_shape == (4, 5, 2) and s.images.dtype == np.float32
    # row 0 is the top of the displayed image: the last FITS row
    np.testing.assert_array_equal(s.images[0, 0, :, 1], cube[1, -1])
    np.testing.assert_array_equal(s.images[0, :, :, 0], cube[0, ::-1])
    np.testing.assert_allclose(s.images[1], s.images[0], atol=0.5)


def test_nan_and_missing_reported_by_id_never_zero_filled(tmp_path):
    s = own_sample(["a", "b", "c", "d"], 3, np.float32)
    path = write_galaxy_folder(s, tmp_path / "d", format="fits")
    from astropy.io import fits

    with fits.open(path / "images-sdss" / "b.fits", mode="update") as hdus:
        hdus[0].data[1, 2, 3] = np.nan
    (path / "images-sdss" / "d.fits").unlink()
    with pytest.warns(DataDroppedWarning) as rec:
        loaded = load_galaxy_folder(path, cache=False, progress=False)
    msg = str(rec[0].message)
    assert "1 non-finite" in msg and "1 missing" in msg and "first TARGETIDs" in msg
    assert rec[0].message.objids.tolist() == ["b", "d"]
    assert "NaN" in rec[0].message.reasons[0]
    assert loaded.ids.tolist() == ["a", "c"]
    assert np.isfinite(loaded.images).all()


def test_folder_must_agree_in_bands(tmp_path):
    s = own_sample(["a", "b", "c"], 3, np.float32)
    path = write_galaxy_folder(s, tmp_path / "d", format="fits")
    other = own_sample(["c"], 5, np.float32)
    write_galaxy_folder(other, tmp_path / "e", format="fits")
    os.replace(tmp_path / "e" / "images-sdss" / "c.fits", path / "images-sdss" / "c.fits")
    with pytest.raises(ValueError, match=r"image of c .* 5 band\(s\).* first image has 3"):
        load_galaxy_folder(path, cache=False, progress=False)


def test_suffix_search_order_and_explicit_suffix(tmp_path, sample):
    path = write_galaxy_folder(sample[:3], tmp_path / "d")
    (path / "folder.json").unlink()
    ids = sample.catalog["objID"][:3]
    # galaxy 0 as PNG only: found by the default search
    Image.open(jpg(path, ids[0])).save(path / "images-sdss" / f"{ids[0]}.png")
    jpg(path, ids[0]).unlink()
    loaded = load_galaxy_folder(path, cache=False, progress=False)
    assert loaded.id_column == "objID" and len(loaded) == 3
    with pytest.warns(DataDroppedWarning, match="1 missing"):
        only_jpg = load_galaxy_folder(path, suffix=".jpg", cache=False, progress=False)
    assert only_jpg.catalog["objID"].tolist() == list(ids[1:])
    with pytest.raises(ValueError, match="suffix"):
        load_galaxy_folder(path, suffix="jpg", cache=False, progress=False)
    with pytest.raises(ValueError, match="format"):
        write_galaxy_folder(sample, tmp_path / "e", format="tiff")
    with pytest.raises(ValueError, match="format='fits'"):
        write_galaxy_folder(own_sample(["a"], 3, np.float32), tmp_path / "e", format="png")


def test_grey_png_folder_is_one_channel_and_string_digits(tmp_path):
    d = tmp_path / "d" / "images-sdss"
    d.mkdir(parents=True)
    for name, v in (("001", 10), ("002", 200)):
        Image.fromarray(np.full((6, 6), v, np.uint8)).save(d / f"{name}.png")
    (tmp_path / "d" / "galaxies.csv").write_text("id,z\n001,0.1\n002,0.2\n")
    s = load_galaxy_folder(tmp_path / "d", id_column="id", cache=False, progress=False)
    assert s.ids.tolist() == ["001", "002"] and s.image_shape == (6, 6, 1)
    assert s.images[:, 0, 0, 0].tolist() == [10, 200]


def test_truncated_and_garbage_fits_are_unreadable_not_zero_padded(tmp_path):
    s = own_sample(["a", "b", "c"], 2, np.float32, size=40)
    path = write_galaxy_folder(s, tmp_path / "d", format="fits.gz")
    raw = write_galaxy_folder(s, tmp_path / "e", format="fits")
    data = (raw / "images-sdss" / "b.fits").read_bytes()
    assert len(data) > 2880
    import gzip

    (path / "images-sdss" / "b.fits.gz").write_bytes(gzip.compress(data[:2880]))
    (path / "images-sdss" / "c.fits.gz").write_bytes(b"<html>error</html>")
    with pytest.warns(DataDroppedWarning, match="2 unreadable") as rec:
        loaded = load_galaxy_folder(path, cache=False, progress=False)
    assert rec[0].message.objids.tolist() == ["b", "c"]
    assert "truncated" in rec[0].message.reasons[0]
    assert loaded.ids.tolist() == ["a"]
    np.testing.assert_array_equal(loaded.images[0], s.images[0])
