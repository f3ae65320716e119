"""Tests of sfnet.datasets.cutouts.fetch_cutouts and ``sfnet cutouts`` against the loopback
Legacy Survey viewer (tests/_fakeservers.py): FITS and JPEG requests, any ID column,
resume, defects, and the folder they write read back by load_galaxy_folder."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

import sfnet
from sfnet.cli import main
from sfnet.datasets import fetch_cutouts, load_galaxy_folder
from sfnet.exceptions import DataDroppedWarning

from _fakeservers import FakeSDSS

SIZE = 16
FAST = dict(progress=False, size=SIZE, retry_backoff=0.001, rate_limit=None)


@pytest.fixture
def fake():
    with FakeSDSS(n_rows=8) as server:
        with sfnet.conf.set_temp("legacysurvey_url", server.legacysurvey_url), \
                sfnet.conf.set_temp("timeout", 2.0), \
                sfnet.conf.set_temp("max_retries", 3), \
                sfnet.conf.set_temp("max_workers", 4):
            yield server


def names_table(fake, rows, names):
    return Table({"name": names, "ra": [r["ra"] for r in rows] * u.deg,
                  "dec": [r["dec"] for r in rows] * u.deg, "label": np.arange(len(rows)) * 1.0})


def test_fits_cutouts_with_string_ids_load_as_a_folder(fake, tmp_path):
    rows = fake.rows[:3]
    table = names_table(fake, rows, ["NGC 1", "J1200+01", "007"])
    out = tmp_path / "ls"
    report = fetch_cutouts(table, out, id_column="name", layer="ls-dr10", bands="grz",
                           format="fits", **FAST)
    assert report["downloaded"] == 3 and report["image_dir"] == "images-ls-dr10"
    reqs = fake.cutout_requests()
    assert len(reqs) == 3 and all(e["format"] == "fits" for e in reqs)
    params = reqs[0]["params"]
    assert params["layer"] == "ls-dr10" and params["bands"] == "grz"
    assert params["size"] == str(SIZE) and float(params["pixscale"]) == 0.262
    files = sorted(p.name for p in (out / "images-ls-dr10").iterdir())
    assert files == ["007.fits", "J1200+01.fits", "NGC 1.fits"]
    with fits.open(out / "images-ls-dr10" / "007.fits") as hdus:
        assert hdus[0].data.shape == (3, SIZE, SIZE)
    # folder.json: no arguments needed to load it
    sample = load_galaxy_folder(out, cache=False, progress=False)
    assert sample.id_column == "name" and sample.ids.tolist() == ["NGC 1", "J1200+01", "007"]
    assert sample.image_shape == (SIZE, SIZE, 3) and sample.images.dtype == np.float32
    assert sample.catalog["label"].tolist() == [0.0, 1.0, 2.0]
    assert np.allclose(sample.catalog["ra"], [r["ra"] for r in rows], rtol=0, atol=1e-12)


def test_fits_defects_are_retried_reported_and_resumed(fake, tmp_path):
    rows = fake.rows[:4]
    ids = [r["objID"] for r in rows]
    fake.cutout_faults[ids[0]] = ["html", "truncated"]   # HTML page, then half a file
    fake.cutout_faults[ids[1]] = ["503"]
    fake.always_faults[ids[2]] = "blank"                 # outside the footprint: no retry
    table = Table({"objID": ids, "ra": [r["ra"] for r in rows],
                   "dec": [r["dec"] for r in rows]})
    out = tmp_path / "d"
    with pytest.warns(DataDroppedWarning, match="1 of 4 cutouts"):
        report = fetch_cutouts(table, out, layer="ls-dr10", bands="gz", format="fits", **FAST)
    assert report["downloaded"] == 3 and report["failed"] == 1
    assert len(fake.cutout_requests(ids[0])) == 3 and len(fake.cutout_requests(ids[2])) == 1
    failures = Table.read(out / "failures.csv", format="ascii.csv")
    assert failures["objID"].tolist() == [ids[2]] and "blank" in failures["error"][0]
    # resume: valid files are kept, a damaged one is fetched again, the failure retried
    fake.reset_log()
    del fake.always_faults[ids[2]]
    path = out / "images-ls-dr10" / f"{ids[1]}.fits"
    path.write_bytes(path.read_bytes()[:2880])
    again = fetch_cutouts(table, out, layer="ls-dr10", bands="gz", format="fits", **FAST)
    assert again["already_present"] == 2 and again["downloaded"] == 2
    assert sorted(e["objID"] for e in fake.cutout_requests()) == sorted([ids[1], ids[2]])
    sample = load_galaxy_folder(out, cache=False, progress=False)
    assert sample.id_column == "objID" and sample.image_shape == (SIZE, SIZE, 2)
    assert sample.catalog["objID"].tolist() == ids


def test_jpeg_cutouts_with_integer_ids_match_fetch_sdss_cutouts(fake, tmp_path):
    rows = fake.rows[:2]
    table = Table({"TARGETID": [39627835438549025, 12], "ra": [r["ra"] for r in rows],
                   "dec": [r["dec"] for r in rows]})
    report = fetch_cutouts(table, tmp_path / "j", id_column="TARGETID", **FAST)
    assert report["downloaded"] == 2 and report["suffix"] == ".jpg"
    assert all(e["format"] == "jpg" and e["params"]["layer"] == "sdss"
               for e in fake.cutout_requests())
    sample = load_galaxy_folder(tmp_path / "j", cache=False, progress=False)
    assert sample.ids.tolist() == [39627835438549025, 12]
    assert sample.ids.dtype == np.int64 and sample.image_shape == (SIZE, SIZE, 3)


def test_bad_arguments_are_refused_before_any_request(fake, tmp_path):
    table = names_table(fake, fake.rows[:2], ["a", "b"])
    cases = [dict(id_column="name", layer="../x"), dict(id_column="name", format="png"),
             dict(id_column="name", bands="g r"), dict(id_column="name", format="fits",
                                                       service="hips2fits"),
             dict(ids=["a/b", "c"], id_column="name"), dict(ids=["x", "x"], id_column="name"),
             dict(ids=[1.5, 2.5], id_column="name"), dict(ids=["a", "b"])]
    for kwargs in cases:
        with pytest.raises((ValueError, TypeError)):
            fetch_cutouts(table, tmp_path / "out", **{**FAST, **kwargs})
    assert fake.n_requests() == 0 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".csv", ".ecsv", ".fits"])
def test_sfnet_cutouts_command_writes_a_folder_train_reads(fake, tmp_path, capsys, suffix):
    rows = fake.rows[:3]
    table = Table({"TARGETID": np.array([2**62 + 1, 2**62 + 2, 2**62 + 3]),
                   "ra": [r["ra"] for r in rows], "dec": [r["dec"] for r in rows],
                   "z": [0.1, 0.2, 0.3]})
    cat = tmp_path / f"mine{suffix}"
    table.write(cat, format={".csv": "ascii.csv", ".ecsv": "ascii.ecsv",
                             ".fits": "fits"}[suffix])
    out = tmp_path / "out"
    code = main(["cutouts", str(cat), "--output", str(out), "--id-column", "TARGETID",
                 "--layer", "ls-dr10", "--format", "fits", "--bands", "grz", "--size",
                 str(SIZE), "--rate-limit", "1000", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "downloaded 3" in printed and "sfnet train" in printed
    assert fake.cutout_requests()[0]["params"]["bands"] == "grz"
    from sfnet.workflow import load_data  # what `sfnet train DIR` reads

    with sfnet.conf.set_temp("cache_dir", str(tmp_path / "cache")):
        sample = load_data(out, progress=False)
    assert sample.id_column == "TARGETID"
    assert sample.ids.tolist() == [2**62 + 1, 2**62 + 2, 2**62 + 3]  # exact, never float
    assert sample.image_shape == (SIZE, SIZE, 3)


def test_sfnet_cutouts_command_errors(fake, tmp_path, capsys):
    assert main(["cutouts", str(tmp_path / "none.csv"), "--output", str(tmp_path / "o"),
                 "--no-progress"]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "c.txt").write_text("ra,dec\n1,2\n")
    assert main(["cutouts", str(tmp_path / "c.txt"), "--output", str(tmp_path / "o"),
                 "--no-progress"]) == 1
    assert ".csv, .ecsv or .fits" in capsys.readouterr().err
    assert fake.n_requests() == 0
