"""SDSS retrieval (sfnet.datasets.sdss) against fake services on 127.0.0.1.

Every offline test talks only to `_fakeservers.FakeSDSS`; the two
``remote_data`` tests at the end query the real SkyServer and Legacy Survey
viewer.
"""

import csv
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from PIL import Image

import sfnet
from sfnet.datasets import _transport as dl
from sfnet.datasets._options import FetchOptions, check_data_release
from sfnet.datasets import sdss
from sfnet.exceptions import DataDroppedWarning

from _fakeservers import FIRST_OBJID, FakeSDSS

SIZE = 16  # small cutouts keep the tests fast

FAST = dict(progress=False, cutout_size=SIZE, retry_backoff=0.001, rate_limit=None)


@pytest.fixture
def fake():
    with FakeSDSS(n_rows=12) as server:
        with sfnet.conf.set_temp("skyserver_url", server.skyserver_url), \
                sfnet.conf.set_temp("hips2fits_url", server.hips2fits_url), \
                sfnet.conf.set_temp("legacysurvey_url", server.legacysurvey_url), \
                sfnet.conf.set_temp("timeout", 2.0), \
                sfnet.conf.set_temp("max_retries", 3), \
                sfnet.conf.set_temp("max_workers", 4), \
                sfnet.conf.set_temp("data_release", 17):
            yield server


def run(path, n, **kwargs):
    """Fetch into ``path`` (no folder loading) with fast test settings."""
    options = {**FAST, **kwargs}
    return sdss.fetch_to_folder(path, n, FetchOptions(**options))


def image_path(out, objid):
    return out / "images-sdss" / f"{objid}.jpg"


def assert_valid_image(path):
    with Image.open(path) as im:
        im.load()
        assert im.size == (SIZE, SIZE) and im.mode == "RGB"


def read_manifest(out):
    with open(out / "failures.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def leftovers(out):
    """Temporary files anywhere under ``out``."""
    return [os.path.join(d, f) for d, _, files in os.walk(out) for f in files
            if f.endswith(".tmp")]


# -- the query ---------------------------------------------------------------

def test_query_metallicity_has_joins_columns_and_cuts():
    sql = sdss.build_sdss_query(500, "metallicity")
    assert sql.startswith("SELECT TOP 500\n")
    for join in ("FROM SpecObj AS s",
                 "JOIN PhotoObj AS p ON p.objID = s.bestObjID",
                 "JOIN galSpecInfo AS i ON i.specObjID = s.specObjID",
                 "JOIN galSpecLine AS l ON l.specObjID = s.specObjID",
                 "JOIN galSpecExtra AS e ON e.specObjID = s.specObjID"):
        assert join in sql
    for cut in ("s.class = 'GALAXY'", "s.zWarning = 0", "i.reliable = 1", "s.z > 0.02",
                "p.petroMag_r >= 14.0", "p.petroMag_r <= 17.77", "e.oh_p50 > 0",
                "e.lgm_tot_p50 > 0", "e.sfr_tot_p50 > -10"):
        assert cut in sql
    for name, info in sdss.SDSS_COLUMNS.items():
        assert f"{info['table']}.{name}" in sql
    assert sql.endswith("ORDER BY s.specObjID")
    assert "nii_6584_flux > 3" not in sql


def test_query_bpt_lines_has_line_cuts_and_custom_targets():
    sql = sdss.build_sdss_query(10, "bpt_lines", r_mag_range=(None, 17.0), z_range=None)
    for line in ("h_alpha", "h_beta", "oiii_5007", "nii_6584"):
        assert f"l.{line}_flux > 3 * l.{line}_flux_err" in sql
        assert f"l.{line}_flux_err > 0" in sql
        assert f"l.{line}_flux < 100000" in sql
    assert "oh_p50 > 0" not in sql and "s.z >" not in sql and "petroMag_r >=" not in sql
    assert "p.petroMag_r <= 17.0" in sql
    custom = sdss.build_sdss_query(5, ["z", "petroR50_r"], extra_columns=["modelMag_g"])
    assert "p.petroR50_r" in custom and "p.modelMag_g" in custom


BAD_PARAMETERS = [
    dict(n_galaxies=-5),
    dict(n_galaxies=0),
    dict(n_galaxies=2.5),
    dict(n_galaxies=True),
    dict(n_galaxies="10; DROP TABLE SpecObj --"),
    dict(target="oh_p50 > 0; DROP TABLE SpecObj"),
    dict(target="metallicity' OR 1=1 --"),
    dict(target=["z", "ra FROM SpecObj --"]),
    dict(extra_columns=["petroR50_r, (SELECT 1)"]),
    dict(data_release="17; DROP TABLE x"),
    dict(data_release=5),
    dict(r_mag_range=("14", "17.77 OR 1=1")),
    dict(r_mag_range=(18.0, 14.0)),
    dict(z_range=(0.02, float("nan"))),
    dict(page_size=0),
    dict(page_size="50000 --"),
    dict(cutout_size="160; --"),
    dict(cutout_size=-160),
    dict(pixel_scale="0.262 --"),
    dict(pixel_scale=-0.262 * u.arcsec),
    dict(pixel_scale=1 * u.kg),
    dict(cutout_service="hips2fits'; --"),
    dict(max_workers=0),
    dict(rate_limit="fast"),
    dict(max_retries=-1),
    dict(timeout=0),
    dict(overwrite="yes"),
]


@pytest.mark.parametrize("bad", BAD_PARAMETERS, ids=lambda d: f"{d}")
def test_refused_parameters_send_no_request_and_write_nothing(fake, tmp_path, bad):
    kwargs = {**FAST, "n_galaxies": 5, **bad}
    n = kwargs.pop("n_galaxies")
    out = tmp_path / "out"
    with pytest.raises((ValueError, TypeError)) as info:
        sdss.fetch_sdss_sample(out, n, **kwargs)
    assert next(iter(bad)).split("_")[0] in str(info.value)  # names the argument
    assert fake.n_requests() == 0
    assert not out.exists()


def test_sql_strings_are_value_errors(fake, tmp_path):
    for bad in ({"n_galaxies": "5 OR 1=1"}, {"target": "x; DELETE FROM y"},
                {"cutout_service": "legacysurvey --"}):
        kwargs = {**FAST, "n_galaxies": 5, **bad}
        n = kwargs.pop("n_galaxies")
        with pytest.raises(ValueError):
            sdss.fetch_sdss_sample(tmp_path / "out", n, **kwargs)
    with pytest.raises(ValueError), sfnet.conf.set_temp("skyserver_url", "javascript:alert(1)"):
        run(tmp_path / "out", 3)
    assert fake.n_requests() == 0


# -- catalog -----------------------------------------------------------------

def test_paging_and_exact_int64_ids(fake, tmp_path):
    out = tmp_path / "out"
    report = run(out, 10, page_size=4)
    sky = fake.requests("skyserver")
    assert [r["path"] for r in sky] == ["/dr17/en/tools/search/x_results.aspx"] * 3
    sqls = [r["params"]["cmd"] for r in sky]
    assert [int(s.split("TOP ")[1].split()[0]) for s in sqls] == [4, 4, 2]
    assert "specObjID >" not in sqls[0]
    assert f"s.specObjID > {fake.rows[3]['specObjID']}" in sqls[1]
    assert f"s.specObjID > {fake.rows[7]['specObjID']}" in sqls[2]
    assert all(r["params"]["format"] == "csv" for r in sky)
    assert report["catalog_rows"] == 10 and report["skyserver_requests"] == 3

    expected = [r["objID"] for r in fake.rows[:10]]
    # galaxies.csv holds the exact integers as text.
    with open(out / "galaxies.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["objID"]) for r in rows] == expected
    assert [int(r["specObjID"]) for r in rows] == [r["specObjID"] for r in fake.rows[:10]]
    assert list(rows[0]) == list(sdss.SDSS_COLUMNS)

    ecsv = Table.read(out / "galaxies.ecsv", format="ascii.ecsv")
    assert ecsv["objID"].dtype == np.int64 and list(ecsv["objID"]) == expected
    assert ecsv["ra"].unit == u.deg and ecsv["petroR90_r"].unit == u.arcsec
    assert ecsv["h_alpha_flux"].unit == u.Unit("1e-17 erg / (s cm2)")
    assert str(ecsv["lgm_tot_p50"].unit) == "dex(solMass)"
    meta = ecsv.meta
    assert meta["data_release"] == 17 and meta["target"] == "metallicity"
    assert meta["sdss_query"] == " ".join(sdss.build_sdss_query(10).split())
    assert meta["sfnet_version"] == sfnet.__version__ and meta["retrieved"].startswith("20")


def test_short_last_page_stops_paging(fake, tmp_path):
    table = sdss.query_sdss_catalog(50, page_size=5, retry_backoff=0.001)
    assert len(table) == 12  # all the fake server has
    assert fake.n_requests("skyserver") == 3  # 5 + 5 + 2 (short page: stop)


def test_skyserver_503_then_success(fake, tmp_path):
    fake.skyserver_faults = ["503", "503"]
    report = run(tmp_path / "out", 3)
    assert fake.n_requests("skyserver") == 3
    assert report["skyserver_requests"] == 3 and report["skyserver_retries"] == 2
    assert report["catalog_rows"] == 3 and report["failed"] == 0


def test_skyserver_503_forever_is_an_error(fake, tmp_path):
    fake.skyserver_faults = ["503"] * 10
    with pytest.raises(sdss.SkyServerError, match=r"after 4 attempt\(s\): HTTP 503"):
        run(tmp_path / "out", 3)
    assert fake.n_requests("skyserver") == 4  # 1 + max_retries
    assert not (tmp_path / "out" / "galaxies.csv").exists()


def test_skyserver_html_error_page_is_an_error_not_data(fake, tmp_path):
    fake.skyserver_faults = ["html"]
    with pytest.raises(sdss.SkyServerError, match="HTML page.*Invalid column name") as info:
        run(tmp_path / "out", 3)
    assert "var x" not in str(info.value)  # scripts stripped from the message
    assert fake.n_requests("skyserver") == 1  # an error page is not retried
    assert not (tmp_path / "out" / "galaxies.csv").exists()
    assert fake.cutout_requests() == []


@pytest.mark.parametrize("fault, message", [
    ("garbled", "garbled"),
    ("missing_column", r"lacks the expected column\(s\) \['oh_p50'\]"),
    ("empty", "empty response"),
    ("float_ids", "not an exact integer"),
    ("unordered", "out of specObjID order"),
])
def test_skyserver_malformed_tables_are_errors(fake, tmp_path, fault, message):
    fake.skyserver_faults = [fault]
    with pytest.raises(sdss.SkyServerError, match=message):
        sdss.query_sdss_catalog(5, retry_backoff=0.001)


def test_empty_result_is_an_error_for_fetch_but_not_for_query(fake, tmp_path):
    fake.skyserver_faults = ["no_rows"]
    table = sdss.query_sdss_catalog(5, retry_backoff=0.001)
    assert len(table) == 0 and table["objID"].dtype == np.int64
    fake.skyserver_faults = ["no_rows"]
    with pytest.raises(sdss.SkyServerError, match="no galaxy matches"):
        run(tmp_path / "out", 5)
    assert not (tmp_path / "out" / "galaxies.csv").exists()


def test_skyserver_slow_response_times_out_and_retries(fake, tmp_path):
    fake.slow_seconds = 1.0
    fake.skyserver_faults = ["slow"]
    t0 = time.perf_counter()
    report = run(tmp_path / "out", 3, timeout=0.2)
    assert time.perf_counter() - t0 < 5
    assert report["skyserver_requests"] == 2 and report["skyserver_retries"] == 1
    fake.skyserver_faults = ["slow"] * 5
    with pytest.raises(sdss.SkyServerError, match="timeout"):
        sdss.query_sdss_catalog(3, timeout=0.2, max_retries=1, retry_backoff=0.001)


def test_catalog_is_reused_for_the_same_query_only(fake, tmp_path):
    out = tmp_path / "out"
    run(out, 4)
    assert fake.n_requests("skyserver") == 1
    fake.reset_log()
    report = run(out, 4)
    assert report["catalog"] == "reused" and fake.n_requests("skyserver") == 0
    assert fake.cutout_requests() == []  # all images valid already
    with pytest.raises(FileExistsError, match="overwrite=True"):
        run(out, 5)  # a different query must not silently replace the catalog
    assert fake.n_requests() == 0
    report = run(out, 5, overwrite=True)  # ask SkyServer again, keep valid images
    assert report["catalog"] == "queried" and fake.n_requests("skyserver") == 1
    assert report["already_present"] == 4 and report["downloaded"] == 1
    assert len(Table.read(out / "galaxies.ecsv")) == 5


def test_a_foreign_catalog_is_never_overwritten_silently(fake, tmp_path):
    (tmp_path / "galaxies.csv").write_text("objID,oh_p50\n1237648720693755918,8.9\n")
    with pytest.raises(FileExistsError, match="not written by fetch_sdss_sample"):
        run(tmp_path, 3)
    assert fake.n_requests() == 0
    assert (tmp_path / "galaxies.csv").read_text().startswith("objID,oh_p50\n")


def test_killed_between_catalog_writes_resumes_without_query(fake, tmp_path):
    run(tmp_path, 3)
    (tmp_path / "galaxies.csv").unlink()  # as if killed after the ECSV was written
    fake.reset_log()
    run(tmp_path, 3)
    assert fake.n_requests() == 0
    with open(tmp_path / "galaxies.csv", newline="") as fh:
        assert [int(r["objID"]) for r in csv.DictReader(fh)] == [
            r["objID"] for r in fake.rows[:3]]


# -- cutouts -----------------------------------------------------------------

def test_hips2fits_request_and_files(fake, tmp_path):
    out = tmp_path / "out"
    report = run(out, 5, pixel_scale=0.262 * u.arcsec, cutout_service="hips2fits")
    assert report == {**report, "valid": 5, "downloaded": 5, "failed": 0, "requests": 5,
                      "retries": 0}
    req = fake.requests("hips2fits")
    assert len(req) == 5
    p = req[0]["params"]
    assert p["hips"] == "CDS/P/SDSS9/color" and p["format"] == "jpg"
    assert p["width"] == p["height"] == str(SIZE) and p["projection"] == "TAN"
    assert float(p["fov"]) == pytest.approx(SIZE * 0.262 / 3600, rel=1e-12)
    # astroquery asks for percentile cuts, i.e. a contrast stretch per cutout (docs/data.rst)
    assert p["min_cut"] == "0.5%" and p["max_cut"] == "99.5%" and p["stretch"] == "linear"
    by_id = {r["objID"]: r for r in fake.rows}
    for r in req:
        assert float(r["params"]["ra"]) == by_id[r["objID"]]["ra"]
        assert float(r["params"]["dec"]) == by_id[r["objID"]]["dec"]
    for row in fake.rows[:5]:
        assert_valid_image(image_path(out, row["objID"]))
    assert read_manifest(out) == []
    saved = json.loads((out / "fetch_report.json").read_text())
    assert saved["downloaded"] == 5 and saved["cutout_service"] == "hips2fits"
    assert leftovers(out) == []


def test_legacysurvey_is_the_default_service(fake, tmp_path):
    out = tmp_path / "out"
    report = run(out, 3)  # neither cutout_service nor pixel_scale given: the paper's
    assert report["downloaded"] == 3 and report["cutout_service"] == "legacysurvey"
    req = fake.requests("legacysurvey")
    assert len(req) == 3 and fake.n_requests("hips2fits") == 0
    by_id = {r["objID"]: r for r in fake.rows}
    for r in req:
        p = r["params"]
        assert p["layer"] == "sdss" and p["pixscale"] == "0.262" and p["size"] == str(SIZE)
        assert float(p["ra"]) == by_id[r["objID"]]["ra"]
        assert float(p["dec"]) == by_id[r["objID"]]["dec"]
    assert_valid_image(image_path(out, fake.rows[0]["objID"]))
    saved = json.loads((out / "fetch_report.json").read_text())
    assert saved["cutout_service"] == "legacysurvey"


def test_cutout_5xx_then_success_counts_retries(fake, tmp_path):
    ids = [r["objID"] for r in fake.rows]
    fake.cutout_faults = {ids[0]: ["503", "503"], ids[1]: ["500"], ids[2]: ["429"],
                          ids[3]: ["reset"]}
    out = tmp_path / "out"
    report = run(out, 6)
    assert report["failed"] == 0 and report["downloaded"] == 6
    assert report["retries"] == 5 and report["requests"] == 11
    assert len(fake.cutout_requests(ids[0])) == 3
    for objid in ids[:6]:
        assert_valid_image(image_path(out, objid))


def test_truncated_jpeg_is_rejected_and_retried(fake, tmp_path):
    ids = [r["objID"] for r in fake.rows]
    fake.cutout_faults = {ids[0]: ["truncated"], ids[1]: ["html"]}
    fake.always_faults = {ids[2]: "truncated"}
    out = tmp_path / "out"
    with pytest.warns(DataDroppedWarning, match=r"1 of 4 cutouts.*failures\.csv"):
        report = run(out, 4)
    assert report["failed"] == 1 and report["downloaded"] == 3
    assert len(fake.cutout_requests(ids[0])) == 2
    assert len(fake.cutout_requests(ids[2])) == 4  # 1 + max_retries, then given up
    assert not image_path(out, ids[2]).exists()  # never written
    assert_valid_image(image_path(out, ids[0]))
    (row,) = read_manifest(out)
    assert int(row["objID"]) == ids[2] and row["attempts"] == "4"
    assert "truncated JPEG" in row["error"]
    assert leftovers(out) == []


def test_permanent_errors_are_not_retried(fake, tmp_path):
    ids = [r["objID"] for r in fake.rows]
    fake.always_faults = {ids[0]: "404", ids[1]: "gray", ids[2]: "blank"}
    out = tmp_path / "out"
    with pytest.warns(DataDroppedWarning):
        report = run(out, 4)
    assert report["failed"] == 3 and report["retries"] == 0 and report["requests"] == 4
    errors = {int(r["objID"]): r["error"] for r in read_manifest(out)}
    assert "HTTP 404" in errors[ids[0]]
    assert "mode L" in errors[ids[1]] and "blank" in errors[ids[2]]


def test_slow_cutout_times_out_then_succeeds(fake, tmp_path):
    ids = [r["objID"] for r in fake.rows]
    fake.slow_seconds = 1.0
    fake.cutout_faults = {ids[1]: ["slow"]}
    out = tmp_path / "out"
    t0 = time.perf_counter()
    report = run(out, 3, timeout=0.2)
    assert time.perf_counter() - t0 < 5
    assert report["failed"] == 0 and report["retries"] == 1
    assert len(fake.cutout_requests(ids[1])) == 2
    assert_valid_image(image_path(out, ids[1]))


def test_resume_after_partial_run_fetches_only_the_missing(fake, tmp_path):
    ids = [r["objID"] for r in fake.rows]
    fake.always_faults = {ids[2]: "503", ids[5]: "slow"}
    fake.slow_seconds = 0.5
    out = tmp_path / "out"
    with pytest.warns(DataDroppedWarning, match="2 of 8"):
        first = run(out, 8, timeout=0.2, max_retries=1)
    assert first["failed"] == 2 and first["downloaded"] == 6
    manifest = read_manifest(out)
    assert [int(r["objID"]) for r in manifest] == [ids[2], ids[5]]
    assert "HTTP 503" in manifest[0]["error"] and "timeout" in manifest[1]["error"]

    fake.always_faults = {}
    fake.reset_log()
    second = run(out, 8, timeout=0.2, max_retries=1)
    assert fake.n_requests("skyserver") == 0
    assert sorted(r["objID"] for r in fake.cutout_requests()) == [ids[2], ids[5]]
    assert second["already_present"] == 6 and second["downloaded"] == 2
    assert second["failed"] == 0 and read_manifest(out) == []
    for objid in ids[:8]:
        assert_valid_image(image_path(out, objid))


def test_deleted_and_corrupted_files_are_fetched_again(fake, tmp_path):
    ids = [r["objID"] for r in fake.rows]
    out = tmp_path / "out"
    run(out, 6)
    image_path(out, ids[1]).unlink()
    data = image_path(out, ids[4]).read_bytes()
    image_path(out, ids[4]).write_bytes(data[: len(data) // 3])
    image_path(out, ids[3]).write_bytes(b"<html>not an image</html>")
    fake.reset_log()
    report = run(out, 6)
    assert sorted(r["objID"] for r in fake.cutout_requests()) == sorted(
        [ids[1], ids[3], ids[4]])
    assert report["already_present"] == 3 and report["downloaded"] == 3
    for objid in ids[:6]:
        assert_valid_image(image_path(out, objid))


def test_concurrent_requests_are_bounded(fake, tmp_path):
    fake.cutout_delay = 0.15
    out = tmp_path / "out"
    report = run(out, 12, max_workers=3)
    assert report["downloaded"] == 12
    assert 2 <= fake.max_inflight <= 3


def test_rate_limit_spaces_the_requests(fake, tmp_path):
    run(tmp_path / "out", 6, rate_limit=40.0, max_workers=4)
    starts = sorted(r["time"] for r in fake.cutout_requests())
    assert len(starts) == 6
    assert starts[-1] - starts[0] >= 5 / 40.0 * 0.9  # at most 40 request starts per second


def test_stale_temporary_files_are_removed(fake, tmp_path):
    out = tmp_path / "out"
    (out / "images-sdss").mkdir(parents=True)
    stale = out / "images-sdss" / f".{FIRST_OBJID}.jpg.abc123.tmp"
    stale.write_bytes(b"\xff\xd8\xff partial")
    keep = out / "images-sdss" / "notes.tmp"
    keep.write_text("user file")
    run(out, 2)
    assert not stale.exists() and keep.exists()


def test_interrupt_leaves_no_partial_file_and_resumes(fake, tmp_path, monkeypatch):
    fake.cutout_delay = 0.05
    out = tmp_path / "out"
    real_wait = dl.cf.wait
    calls = []

    def interrupted_wait(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(dl.cf, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        run(out, 10, max_workers=2)
    monkeypatch.undo()
    time.sleep(0.3)  # let requests in flight finish (they write atomically)
    assert leftovers(out) == []
    done = sorted(p.name for p in (out / "images-sdss").iterdir())
    assert 0 < len(done) < 10
    for name in done:
        assert_valid_image(out / "images-sdss" / name)
    assert not (out / "failures.csv").exists()
    fake.reset_log()
    report = run(out, 10)
    assert report["already_present"] == len(done) and report["valid"] == 10
    assert len(fake.cutout_requests()) == 10 - len(done)


def test_progress_bar_and_summary(fake, tmp_path, capsys):
    run(tmp_path / "out", 3, progress=True)
    err = capsys.readouterr().err
    assert "cutouts (legacysurvey)" in err and "3/3" in err
    assert "cutouts: 3/3 valid (0 already present, 3 downloaded), 0 failed" in err


def test_fetch_sdss_cutouts_for_an_existing_catalog(fake, tmp_path):
    catalog = Table({"objID": np.array([r["objID"] for r in fake.rows[:3]], dtype=np.int64),
                     "ra": [r["ra"] for r in fake.rows[:3]] * u.deg,
                     "dec": [r["dec"] for r in fake.rows[:3]] * u.deg})
    report = sdss.fetch_sdss_cutouts(catalog, tmp_path, **FAST)
    assert report["downloaded"] == 3 and fake.n_requests("skyserver") == 0
    catalog["objID"] = catalog["objID"].astype(float)
    with pytest.raises(ValueError, match="objID"):
        sdss.fetch_sdss_cutouts(catalog, tmp_path, **FAST)


def test_fetch_sdss_sample_returns_the_loaded_folder(fake, tmp_path, monkeypatch):
    seen = {}

    def fake_load(path, progress):
        seen.update(path=path, progress=progress)
        return "sample"

    monkeypatch.setattr(sdss, "_load_sample", fake_load)
    assert sdss.fetch_sdss_sample(tmp_path, 2, **FAST) == "sample"
    assert seen == {"path": tmp_path, "progress": False}


def test_fetch_sdss_sample_loads_with_load_galaxy_folder(fake, tmp_path):
    from sfnet.datasets import folder
    if not hasattr(folder, "load_galaxy_folder"):
        pytest.skip("load_galaxy_folder not available yet")
    with sfnet.conf.set_temp("cache_dir", str(tmp_path / "cache")):
        sample = sdss.fetch_sdss_sample(tmp_path / "out", 3, **FAST)
    assert len(sample) == 3
    assert list(sample.catalog["objID"]) == [r["objID"] for r in fake.rows[:3]]
    assert np.asarray(sample.images).shape == (3, SIZE, SIZE, 3)
    meta = sample.catalog.meta
    assert meta["sdss_query"] == " ".join(sdss.build_sdss_query(3).split())
    assert meta["data_release"] == 17 and meta["sdss_fetch"]["downloaded"] == 3


# -- building blocks ---------------------------------------------------------

def test_rate_limiter_spaces_request_starts():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = dl.RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.wait()
    assert now[0] == pytest.approx(1.0)  # 5 starts at 4/s: t = 0, .25, .5, .75, 1
    assert dl.RateLimiter(None).wait() == 0.0


def test_backoff_is_exponential_with_jitter():
    import random
    policy = dl.RetryPolicy(max_retries=5, backoff=1.0, max_backoff=8.0)
    rng = random.Random(1)
    delays = [[policy.delay(i, rng) for _ in range(200)] for i in range(5)]
    for i, ds in enumerate(delays):
        d = min(8.0, 2.0 ** i)
        assert min(ds) >= d / 2 and max(ds) <= d and np.std(ds) > 0
    assert policy.delay(0, rng, retry_after=5.0) == 5.0


def test_pool_keeps_going_after_a_task_fails():
    lock = threading.Lock()
    seen = []

    def work(task, stop):
        with lock:
            seen.append(task)
        if task == 3:
            raise OSError("disk full")
        return task * 2

    results = dict(dl.run_pool(range(10), work, max_workers=3))
    assert sorted(seen) == list(range(10))
    assert isinstance(results[3], OSError) and results[4] == 8


class _Answer:
    """A stand-in for a `requests.Response` (status, headers, text)."""

    def __init__(self, status, text="", headers=None):
        self.status_code, self.text, self.headers = status, text, headers or {}


def test_transport_classifies_answers():
    dl.raise_for_status(_Answer(200))  # no error
    with pytest.raises(dl.TransientError, match=r"^HTTP 503 from https://x$") as info:
        dl.raise_for_status(_Answer(503, headers={"Retry-After": "7"}), source="https://x")
    assert info.value.retry_after == 7.0
    with pytest.raises(dl.TransientError) as info:
        dl.raise_for_status(_Answer(429, headers={"Retry-After": "soon"}))
    assert info.value.retry_after is None
    page = "<html><script>x()</script><body><h1>Not found</h1> no &amp; such</body></html>"
    with pytest.raises(dl.PermanentError, match="HTTP 404: 'Not found no & such'"):
        dl.raise_for_status(_Answer(404, text=page))
    assert dl.looks_like_html("<!DOCTYPE html><html>") and not dl.looks_like_html("#Table1")
    assert dl.html_text("<p>" + "a" * 20 + "</p>", limit=5) == "aaaaa..."


def test_fetch_options_are_checked_once_with_conf_defaults():
    import dataclasses

    with sfnet.conf.set_temp("max_workers", 3), sfnet.conf.set_temp("timeout", 9.0), \
            sfnet.conf.set_temp("data_release", 16):
        opts = FetchOptions(pixel_scale=0.5 * u.arcmin, rate_limit=2 * u.Hz,
                            extra_columns="zErr", target="bpt_lines")
    assert (opts.max_workers, opts.timeout, opts.data_release) == (3, 9.0, 16)
    assert opts.pixel_scale == pytest.approx(30.0) and opts.rate_limit == 2.0
    assert opts.extra_columns == ("zErr",) and opts.target.name == "bpt_lines"
    assert opts.cutout_service == sfnet.conf.cutout_service and opts.cone is None
    assert opts.policy.max_retries == sfnet.conf.max_retries
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.timeout = 1.0
    for bad, name in ((dict(timeout=-1), "timeout"), (dict(cutout_size=4), "cutout_size"),
                      (dict(cutout_service="nowhere"), "cutout_service"),
                      (dict(selection="papers"), "selection"),
                      (dict(selection="paper", z_range=(0.1, None)), "z_range"),
                      (dict(extra_columns=["x; DROP TABLE"]), "extra_columns")):
        with pytest.raises((ValueError, TypeError), match=name):
            FetchOptions(**bad)


def test_fetch_options_from_the_command_line_namespace():
    import argparse

    ns = argparse.Namespace(target="metallicity", cutout_size=32, max_workers=2,
                            output="somewhere", print_sql=True, progress=True)
    opts = FetchOptions.from_namespace(ns, progress=False)
    assert (opts.cutout_size, opts.max_workers, opts.progress) == (32, 2, False)


def test_one_home_per_retrieval_concern():
    """config imports nothing from datasets; column names and file names have one home."""
    import ast
    import inspect

    from sfnet import catalog, config
    from sfnet.datasets import _layout, cutouts, folder, skyserver

    tree = ast.parse(inspect.getsource(config))
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in modules if "datasets" in m]
    assert skyserver.PAPER_COLUMNS is catalog.PAPER_COLUMNS
    assert set(catalog.PAPER_COLUMNS) <= set(catalog.COLUMNS)
    assert config.Conf.cutout_service.choices is cutouts._SERVICES
    for module in (cutouts, skyserver, folder):
        source = inspect.getsource(module)
        assert '"galaxies.csv"' not in source and '"images-sdss"' not in source
    assert _layout.image_path(Path("d"), 12) == Path("d") / "images-sdss" / "12.jpg"


# -- the real services (skipped unless --remote-data) --------------------------

@pytest.mark.remote_data
def test_real_skyserver_catalog():
    table = sdss.query_sdss_catalog(3, "bpt_lines", page_size=2, timeout=120)
    assert len(table) == 3 and table["objID"].dtype == np.int64
    assert np.all(table["h_alpha_flux"] > 3 * table["h_alpha_flux_err"])
    assert np.all(np.diff(table["specObjID"]) > 0)


@pytest.mark.remote_data
def test_real_fetch_three_galaxies(tmp_path):
    report = sdss.fetch_to_folder(tmp_path, 3, FetchOptions(progress=False, timeout=120))
    assert report["valid"] == 3
    table = Table.read(tmp_path / "galaxies.ecsv")
    assert np.all(table["oh_p50"] > 0)
    for objid in table["objID"]:
        with Image.open(tmp_path / "images-sdss" / f"{objid}.jpg") as im:
            assert im.size == (160, 160) and im.mode == "RGB"


# -- cutout service registry --------------------------------------------------

def test_cutout_service_registry(fake, tmp_path):
    from sfnet.datasets import cutouts

    assert cutouts.cutout_services()[:2] == ("hips2fits", "legacysurvey")
    with pytest.raises(ValueError, match="already registered"):
        cutouts.register_cutout_service("hips2fits")(cutouts.LegacySurveyService)
    legacy = cutouts.LegacySurveyService(160, 0.262)
    assert legacy.url.endswith("/cutout.jpg") and legacy.service == "legacysurvey"
    assert legacy.params(1.5, -2.0) == {"ra": "1.5", "dec": "-2.0", "layer": "sdss",
                                        "pixscale": "0.262", "size": 160}
    with pytest.raises(TypeError):
        sfnet.conf.cutout_service = "nowhere"

    @cutouts.register_cutout_service("test-mirror")
    class Mirror(cutouts.LegacySurveyService):
        pass

    try:
        assert "test-mirror" in cutouts.cutout_services()
        with sfnet.conf.set_temp("cutout_service", "test-mirror"):
            report = run(tmp_path / "out", 2)
        assert report["cutout_service"] == "test-mirror" and report["valid"] == 2
    finally:
        del cutouts._SERVICES["test-mirror"]


# -- the paper's selection (agn-convnets data/AGN_K03.sql) ----------------------

PAPER_JOINS = ("FROM SpecObj AS s",
               "JOIN Galaxy AS g ON g.objID = s.bestObjID",
               "JOIN galSpecLine AS l ON l.specObjID = s.specObjID",
               "JOIN galSpecInfo AS i ON i.specObjID = s.specObjID",
               "JOIN galSpecExtra AS e ON e.specObjID = s.specObjID",
               "JOIN PhotoObjDR7 AS p7 ON p7.DR8ObjID = s.bestObjID")
PAPER_CUTS = ("g.z > 0.02", "g.petroMag_r > 14", "g.petroMag_r <= 17.77",
              "l.nii_6584_flux > 0", "l.h_alpha_flux > 0", "l.oiii_5007_flux > 0",
              "l.h_beta_flux > 0")


def test_paper_selection_sent_to_skyserver_and_parsed(fake):
    table = sdss.query_sdss_catalog(5, "metallicity", selection="paper", page_size=3,
                                    retry_backoff=0.001)
    # (astroquery sends the statement on one line)
    sqls = [" ".join(r["params"]["cmd"].split()) for r in fake.requests("skyserver")]
    assert len(sqls) == 2  # 3 + 2 rows, keyset paging as for the default selection
    first, second = sqls
    for text in PAPER_JOINS + PAPER_CUTS + ("e.oh_p50 > 0", "e.lgm_tot_p50 > 0",
                                           "e.sfr_tot_p50 > -10"):
        assert text in first and text in second
    # the paper has none of sfnet's own default cuts; reliable is only returned
    for absent in ("s.class", "zWarning", "sciencePrimary", "i.reliable = 1", "s.z >",
                   "PhotoObj AS p ", "p.petroMag_r", ">= 14"):
        assert absent not in first
    assert first.startswith("SELECT TOP 3 ") and first.endswith("ORDER BY s.specObjID")
    assert "specObjID >" not in first
    assert f"s.specObjID > {fake.rows[2]['specObjID']}" in second
    selected = first.split("FROM")[0]
    for col in ("g.objID", "p7.DR7ObjID", "s.specObjID", "g.ra", "g.dec", "s.z", "s.zErr",
                "s.velDisp", "s.velDispErr", "g.modelMag_u", "g.modelMag_z",
                "g.petroR50_r", "g.petroR90_r", "i.reliable", "l.h_beta_flux_err"):
        assert col in selected
    assert table.colnames == list(sdss.PAPER_COLUMNS)
    assert set(sdss.SDSS_COLUMNS) <= set(table.colnames)
    rows = fake.rows[:5]
    assert table["DR7ObjID"].dtype == np.int64  # header 'dr7objid', parsed exactly
    assert table["DR7ObjID"].tolist() == [r["DR7ObjID"] for r in rows]
    assert table["objID"].tolist() == [r["objID"] for r in rows]
    assert table["reliable"].tolist() == [1] * 5
    assert table["velDisp"].unit == u.km / u.s and table["modelMag_g"].unit == u.mag
    assert table["modelMag_g"].tolist() == [r["modelMag_g"] for r in rows]
    assert table.meta["selection"] == "paper"
    assert table.meta["sdss_query"] == " ".join(
        sdss.build_sdss_query(5, "metallicity", selection="paper").split())


def test_paper_selection_bpt_adds_the_readme_snr_cut():
    sql = sdss.build_sdss_query(10, "bpt_lines", selection="paper")
    for text in PAPER_JOINS + PAPER_CUTS:
        assert text in sql
    for line in ("h_alpha", "h_beta", "oiii_5007", "nii_6584"):
        assert f"l.{line}_flux > 3 * l.{line}_flux_err" in sql
    assert "oh_p50 > 0" not in sql
    default = sdss.build_sdss_query(10, "bpt_lines")
    assert "Galaxy" not in default and "PhotoObjDR7" not in default
    assert "p.modelMag_u" in default and "p.petroR50_r" in default  # now fetched by default


@pytest.mark.parametrize("bad, name", [
    (dict(selection="Paper"), "selection"),
    (dict(selection="paper; DROP TABLE x"), "selection"),
    (dict(selection="paper", r_mag_range=(14.0, 18.0)), "r_mag_range"),
    (dict(selection="paper", z_range=None), "z_range"),
    (dict(extra_columns=["DR7ObjID"]), "extra_columns"),
])
def test_bad_selection_is_refused_before_any_request(fake, tmp_path, bad, name):
    with pytest.raises(ValueError, match=name):
        sdss.fetch_sdss_sample(tmp_path / "out", 3, **{**FAST, **bad})
    assert fake.n_requests() == 0 and not (tmp_path / "out").exists()
    assert "p7.DR7ObjID" in sdss.build_sdss_query(3, selection="paper",
                                                  extra_columns=["DR7ObjID"])


def test_paper_fetch_writes_the_folder(fake, tmp_path):
    out = tmp_path / "out"
    report = run(out, 4, selection="paper", target="bpt_lines")
    assert report["selection"] == "paper" and report["valid"] == 4
    ecsv = Table.read(out / "galaxies.ecsv")
    assert ecsv.colnames == list(sdss.PAPER_COLUMNS)
    assert ecsv.meta["selection"] == "paper" and ecsv.meta["target"] == "bpt_lines"
    fake.reset_log()
    assert run(out, 4, selection="paper", target="bpt_lines")["catalog"] == "reused"
    with pytest.raises(FileExistsError):  # the default selection is another query
        run(out, 4, target="bpt_lines")
    assert fake.n_requests() == 0


# -- region ------------------------------------------------------------------

def test_region_restricts_the_query_to_a_cone(fake):
    from astropy.coordinates import SkyCoord

    center = SkyCoord(fake.rows[5]["ra"] * u.deg, fake.rows[5]["dec"] * u.deg)
    # rows are ~0.0135 deg = 0.81 arcmin apart: 2 arcmin keeps rows 3..7
    table = sdss.query_sdss_catalog(10, region=(center, 2 * u.arcmin), retry_backoff=0.001)
    (req,) = fake.requests("skyserver")
    sql = " ".join(req["params"]["cmd"].split())
    ra, dec = fake.rows[5]["ra"], fake.rows[5]["dec"]
    assert (f"JOIN dbo.fGetNearbyObjEq({ra!r}, {dec!r}, 2.0) AS n ON n.objID = s.bestObjID"
            in sql)
    sep = center.separation(SkyCoord(table["ra"], table["dec"])).to_value(u.arcmin)
    assert len(table) == 5 and np.all(sep <= 2.0)
    assert table["objID"].tolist() == [r["objID"] for r in fake.rows[3:8]]
    assert table.meta["region"] == {"ra_deg": ra, "dec_deg": dec, "radius_arcmin": 2.0}
    # a float radius is in arcmin; galactic coordinates are converted to ICRS
    gal = center.galactic
    sql = sdss.build_sdss_query(10, region=(gal, 120.0), selection="paper")
    args = sql.split("fGetNearbyObjEq(")[1].split(")")[0].split(", ")
    assert float(args[0]) == pytest.approx(ra, abs=1e-9)
    assert float(args[1]) == pytest.approx(dec, abs=1e-9) and args[2] == "120.0"
    assert sql.index("fGetNearbyObjEq") < sql.index("WHERE")


def test_bad_regions_are_value_errors_naming_region(fake, tmp_path):
    from astropy.coordinates import SkyCoord

    c = SkyCoord(150 * u.deg, 2 * u.deg)
    bad = [
        "150 2 3",
        (c,),
        ("150.0", 2.0),
        (c, "2) AS n; DROP TABLE SpecObj --"),
        (c, -1.0),
        (c, 0 * u.arcmin),
        (c, 2 * u.kg),
        (c, float("nan")),
        (c, 20 * u.deg),  # beyond the 600 arcmin limit
        (SkyCoord([1, 2] * u.deg, [3, 4] * u.deg), 1.0),
        (c, [1.0, 2.0]),
    ]
    for region in bad:
        with pytest.raises(ValueError, match="region"):
            sdss.fetch_sdss_sample(tmp_path / "out", 3, region=region, **FAST)
    assert fake.n_requests() == 0 and not (tmp_path / "out").exists()


# -- astroquery configuration ---------------------------------------------------

def test_unset_endpoints_follow_astroquery_conf(fake, tmp_path):
    from astroquery.hips2fits import conf as hips2fits_conf
    from astroquery.sdss import conf as sdss_conf

    from sfnet.datasets import cutouts

    with sfnet.conf.set_temp("skyserver_url", ""), sfnet.conf.set_temp("data_release", None), \
            sdss_conf.set_temp("skyserver_baseurl", fake.base_url), \
            sdss_conf.set_temp("default_release", 16):
        table = sdss.query_sdss_catalog(2, retry_backoff=0.001)
    (req,) = fake.requests("skyserver")
    assert req["path"] == "/dr16/en/tools/search/x_results.aspx"
    assert table.meta["data_release"] == 16 and table.meta["skyserver_url"] == fake.base_url
    # sfnet's own settings win over astroquery's
    fake.reset_log()
    with sfnet.conf.set_temp("data_release", 15), \
            sdss_conf.set_temp("skyserver_baseurl", "http://127.0.0.1:9"), \
            sdss_conf.set_temp("default_release", 16):
        sdss.query_sdss_catalog(2, retry_backoff=0.001)
    assert [r["path"] for r in fake.requests("skyserver")] == [
        "/dr15/en/tools/search/x_results.aspx"]
    assert sdss_conf.skyserver_baseurl == "https://skyserver.sdss.org"  # restored

    mirror = "https://alaskybis.cds.unistra.fr/hips-image-services/hips2fits"
    with sfnet.conf.set_temp("hips2fits_url", ""), hips2fits_conf.set_temp("server", mirror):
        assert cutouts.Hips2FitsService(16, 0.262).url == mirror
    with sfnet.conf.set_temp("hips2fits_url", ""):
        assert cutouts.Hips2FitsService(16, 0.262).url == hips2fits_conf.server
    assert cutouts.Hips2FitsService(16, 0.262).url == fake.hips2fits_url


def test_conf_defaults_are_astroquerys_and_the_papers_service():
    from astroquery.sdss import conf as sdss_conf

    from sfnet.datasets import skyserver

    conf = sfnet.config.Conf()
    assert conf.skyserver_url == "" and conf.data_release is None
    assert conf.hips2fits_url == "" and conf.cutout_service == "legacysurvey"
    with sfnet.conf.set_temp("skyserver_url", ""), sfnet.conf.set_temp("data_release", None):
        assert skyserver.skyserver_url() == sdss_conf.skyserver_baseurl
        assert check_data_release(None) == sdss_conf.default_release
        with sdss_conf.set_temp("default_release", 12):
            assert check_data_release(None) == 12


# -- bring your own galaxies ------------------------------------------------------

def _coords(fake, rows):
    from astropy.coordinates import SkyCoord

    return SkyCoord([r["ra"] for r in rows] * u.deg, [r["dec"] for r in rows] * u.deg)


def test_fetch_cutouts_for_skycoords_loads_as_a_folder(fake, tmp_path):
    from sfnet.datasets import cutouts, load_galaxy_folder

    rows = fake.rows[:3]
    coords = _coords(fake, rows)
    out = tmp_path / "mine"
    report = sdss.fetch_sdss_cutouts(coords, out, **FAST)
    assert report["downloaded"] == 3 and report["catalog"] == "written"
    assert fake.n_requests("skyserver") == 0 and len(fake.requests("legacysurvey")) == 3
    ids = cutouts.position_ids(coords)
    assert ids.dtype == np.int64 and len(set(ids.tolist())) == 3
    assert ids[0] == round(rows[0]["ra"] * 1e6) * 10**9 + round((rows[0]["dec"] + 90) * 1e6)
    for objid in ids:
        assert_valid_image(image_path(out, objid))
    with sfnet.conf.set_temp("cache_dir", str(tmp_path / "cache")):
        sample = load_galaxy_folder(out, progress=False, cache=False)
    assert sample.catalog["objID"].tolist() == ids.tolist()
    assert np.allclose(sample.catalog["ra"], [r["ra"] for r in rows], rtol=0, atol=1e-12)
    assert np.asarray(sample.images).shape == (3, SIZE, SIZE, 3)
    # deterministic names: a second run finds every file
    fake.reset_log()
    again = sdss.fetch_sdss_cutouts(coords, out, **FAST)
    assert again["already_present"] == 3 and fake.cutout_requests() == []
    assert again["catalog"] == "kept"


def test_fetch_cutouts_for_tables_with_ids(fake, tmp_path):
    import pandas as pd
    from astropy.table import QTable

    from sfnet.datasets import load_galaxy_folder

    rows = fake.rows[3:6]
    coords = _coords(fake, rows)
    ids = [11, 12, 13]
    qt = QTable({"coord": coords, "label": [1.0, 2.0, 3.0]})
    report = sdss.fetch_sdss_cutouts(qt, tmp_path / "q", ids=ids, **FAST)
    assert report["downloaded"] == 3
    sample = load_galaxy_folder(tmp_path / "q", progress=False, cache=False)
    assert sample.catalog["objID"].tolist() == ids
    assert sample.catalog["label"].tolist() == [1.0, 2.0, 3.0]
    assert sample.catalog["ra"].unit == u.deg

    df = pd.DataFrame({"ra": [r["ra"] for r in rows], "dec": [r["dec"] for r in rows],
                       "objID": [r["objID"] for r in rows], "oh_p50": [8.9, 9.0, 9.1]})
    fake.reset_log()
    sdss.fetch_sdss_cutouts(df, tmp_path / "df", **FAST)
    got = sorted(r["objID"] for r in fake.cutout_requests())
    assert got == [r["objID"] for r in rows]
    sample = load_galaxy_folder(tmp_path / "df", progress=False, cache=False)
    assert sample.catalog["objID"].tolist() == [r["objID"] for r in rows]  # exact int64
    assert sample.catalog["oh_p50"].tolist() == [8.9, 9.0, 9.1]


def test_fetch_cutouts_keeps_an_existing_catalog(fake, tmp_path):
    rows = fake.rows[:2]
    (tmp_path / "galaxies.csv").write_text(f"objID,oh_p50\n{rows[0]['objID']},8.9\n")
    catalog = Table({"objID": np.array([r["objID"] for r in rows], dtype=np.int64),
                     "ra": [r["ra"] for r in rows] * u.deg,
                     "dec": [r["dec"] for r in rows] * u.deg})
    with pytest.warns(DataDroppedWarning, match="1 of the 2 galaxies are not in it"):
        report = sdss.fetch_sdss_cutouts(catalog, tmp_path, **FAST)
    assert report["catalog"] == "kept" and report["downloaded"] == 2
    assert (tmp_path / "galaxies.csv").read_text().startswith("objID,oh_p50\n")


def test_bad_positions_and_ids_are_refused_before_any_request(fake, tmp_path):
    from astropy.coordinates import SkyCoord

    coords = _coords(fake, fake.rows[:2])
    cases = [
        ((coords,), dict(ids=[1]), "ids"),
        ((coords,), dict(ids=[1, 1]), "ids"),
        ((coords,), dict(ids=[1.0, 2.0]), "ids"),
        ((coords,), dict(ids=["a", "b"]), "ids"),
        ((coords,), dict(ids=[-1, 2]), "ids"),
        ((Table({"x": [1.0]}),), {}, "positions"),
        ((Table({"ra": ["a"], "dec": ["b"]}),), {}, "positions"),
        ((Table({"ra": np.ma.MaskedArray([1.0, 2.0], mask=[False, True]),
                 "dec": [3.0, 4.0]}),), {}, "masked"),
        ((SkyCoord([1.0, 1.0] * u.deg, [2.0, 2.0] * u.deg),), {}, "positions"),
        ((SkyCoord([] * u.deg, [] * u.deg),), {}, "positions"),
    ]
    for args, kwargs, name in cases:
        with pytest.raises(ValueError, match=name):
            sdss.fetch_sdss_cutouts(*args, tmp_path / "out", **kwargs, **FAST)
    with pytest.raises(TypeError, match="positions"):
        sdss.fetch_sdss_cutouts([(1.0, 2.0)], tmp_path / "out", **FAST)
    assert fake.n_requests() == 0 and not (tmp_path / "out").exists()
