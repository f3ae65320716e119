"""Fake SkyServer, hips2fits and Legacy Survey viewer on 127.0.0.1, with faults.

`FakeSDSS` runs a real HTTP server (stdlib ``http.server`` in a thread) that
answers

* ``/dr{N}/en/tools/search/x_results.aspx?cmd=SQL&format=csv`` like SkyServer:
  ``#Table1``, a header line, CSV rows.  It honours ``TOP n``,
  ``specObjID > x`` (the paging sfnet does) and a cone
  ``dbo.fGetNearbyObjEq(ra, dec, r_arcmin)`` in the SQL and returns the
  selected columns of a synthetic catalog sorted by ``specObjID`` (the
  header spells the names as SkyServer does for the paper's ``DR7ObjID``:
  lower case);
* ``/hips-image-services/hips2fits?hips=...&format=jpg&width=...`` and
* ``/viewer/cutout.jpg?ra=&dec=&layer=sdss&pixscale=&size=`` with JPEG bytes;
* ``/viewer/cutout.fits?ra=&dec=&layer=ls-dr10&pixscale=&size=&bands=grz`` with a
  float32 FITS cube ``(bands, size, size)`` (layers ``sdss``, ``ls-dr9``,
  ``ls-dr10``; ``bands`` default ``grz``).

Faults are programmable: ``skyserver_faults`` is a FIFO of faults for the next
SkyServer requests; ``cutout_faults[objID]`` a FIFO for that galaxy's next
cutout requests; ``always_faults[objID]`` a fault on every request.  Fault
names: ``"503"``, ``"500"``, ``"429"``, ``"404"``, ``"slow"`` (sleep
``slow_seconds`` before answering), ``"reset"`` (close without answering),
``"html"`` (an HTML error page with status 200), ``"truncated"`` (first half
of the JPEG, status 200), ``"gray"`` (a greyscale JPEG), ``"blank"``,
``"empty"``; SkyServer only: ``"garbled"``, ``"missing_column"``,
``"float_ids"``, ``"unordered"``, ``"no_rows"`` (a valid, empty table).  Every
request is logged with its time; the largest number of cutout requests in
flight at once is recorded.
"""

import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

__all__ = ["FakeSDSS", "make_rows", "jpeg_bytes", "fits_bytes"]

SKYSERVER_PATH = re.compile(r"^/dr(\d+)/en/tools/search/x_(results\.aspx|sql\.aspx?)$")
HIPS2FITS_PATH = "/hips-image-services/hips2fits"
LEGACY_PATH = "/viewer/cutout.jpg"
LEGACY_FITS_PATH = "/viewer/cutout.fits"
LEGACY_LAYERS = ("sdss", "ls-dr9", "ls-dr10")

# objIDs beyond 2**53: a float round trip would corrupt them.
FIRST_OBJID = 1237648720693755918
FIRST_SPECOBJID = 299489952322840576

SDSS_HTML_ERROR = """<html><head><title>SQL Search</title></head>
<body><h1>SkyServer SQL Search</h1>
<font color=red><b>SQL returned the following error:</b>
<br>Invalid column name 'oh_p5O'.</font>
<script>var x = 1;</script></body></html>"""


def make_rows(n):
    """A synthetic MPA-JHU catalog: list of dicts sorted by specObjID."""
    rows = []
    for i in range(n):
        rows.append({
            "objID": FIRST_OBJID + 1_000_003 * i,
            "specObjID": FIRST_SPECOBJID + 17_592_186_044_416 * i + 7 * i,
            "ra": 150.0 + 0.0123456789 * i,
            "dec": 2.0 + 0.0054321 * i,
            "z": 0.05 + 0.001 * i,
            "petroMag_r": 16.5 + 0.01 * i,
            "petroR90_r": 8.25,
            "lgm_tot_p50": 10.1,
            "sfr_tot_p50": 0.3,
            "oh_p50": 8.9 + 0.001 * i,
            "bptclass": 1,
            "h_alpha_flux": 250.0, "h_alpha_flux_err": 5.0,
            "h_beta_flux": 80.0, "h_beta_flux_err": 4.0,
            "oiii_5007_flux": 40.0, "oiii_5007_flux_err": 3.0,
            "nii_6584_flux": 90.0, "nii_6584_flux_err": 3.5,
            # columns of the paper's selection and the new defaults
            "DR7ObjID": 587722981736000000 + 1_000_001 * i,
            "zErr": 1.5e-5, "velDisp": 120.0 + i, "velDispErr": 8.0, "reliable": 1,
            "modelMag_u": 18.9, "modelMag_g": 17.4 + 0.01 * i, "modelMag_r": 16.6,
            "modelMag_i": 16.2, "modelMag_z": 15.9, "petroR50_r": 3.1,
        })
    return rows


def _separation_arcmin(ra1, dec1, ra2, dec2):
    """Great-circle distance in arcmin (haversine) between two positions in degrees."""
    r1, d1, r2, d2 = np.radians([ra1, dec1, ra2, dec2])
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return float(np.degrees(2 * np.arcsin(np.sqrt(h))) * 60.0)


def jpeg_bytes(size, seed=0, mode="RGB", blank=False):
    """A small JPEG whose colours depend on ``seed``."""
    y, x = np.mgrid[0:size, 0:size]
    r = (x * 255 // max(size - 1, 1) + seed * 37) % 256
    g = (y * 255 // max(size - 1, 1) + seed * 91) % 256
    b = ((x + y) * 127 // max(size - 1, 1) + seed * 13) % 256
    arr = np.stack([r, g, b], axis=-1).astype(np.uint8)
    if blank:
        arr[:] = 0
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def fits_bytes(size, n_bands, seed=0, blank=False):
    """A float32 FITS cube ``(n_bands, size, size)`` (2-D for one band) depending on ``seed``."""
    from astropy.io import fits

    y, x = np.mgrid[0:size, 0:size]
    cube = np.stack([np.exp(-((x - size / 2) ** 2 + (y - size / 2) ** 2) / (2 + b + seed % 7))
                     * (1 + b) for b in range(n_bands)]).astype(np.float32)
    if blank:
        cube[:] = 0
    buf = io.BytesIO()
    fits.PrimaryHDU(cube[0] if n_bands == 1 else cube).writeto(buf)
    return buf.getvalue()


class FakeSDSS:
    """The fake services; use as a context manager or call `start`/`stop`."""

    def __init__(self, n_rows=20):
        self.rows = make_rows(n_rows)
        self.by_position = {(r["ra"], r["dec"]): r["objID"] for r in self.rows}
        self.skyserver_faults = []
        self.cutout_faults = {}
        self.always_faults = {}
        self.cutout_delay = 0.0
        self.slow_seconds = 1.0
        self.lock = threading.Lock()
        self.log = []
        self.inflight = 0
        self.max_inflight = 0
        self._stop = threading.Event()
        self._server = None
        self._thread = None

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.fake = self
        server.handle_error = lambda request, client_address: None  # client went away
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def skyserver_url(self):
        return self.base_url + "/"

    @property
    def hips2fits_url(self):
        return self.base_url + HIPS2FITS_PATH

    @property
    def legacysurvey_url(self):
        return self.base_url + "/viewer/"

    # -- inspection --------------------------------------------------------
    def requests(self, kind=None):
        with self.lock:
            return [e for e in self.log if kind is None or e["kind"] == kind]

    def n_requests(self, kind=None):
        return len(self.requests(kind))

    def cutout_requests(self, objid=None):
        return [e for e in self.requests() if e["kind"] in ("hips2fits", "legacysurvey")
                and (objid is None or e["objID"] == objid)]

    def reset_log(self):
        with self.lock:
            self.log.clear()
            self.max_inflight = 0

    # -- internals ---------------------------------------------------------
    def next_fault(self, kind, objid=None):
        with self.lock:
            if kind == "skyserver":
                return self.skyserver_faults.pop(0) if self.skyserver_faults else None
            queue = self.cutout_faults.get(objid)
            if queue:
                return queue.pop(0)
            return self.always_faults.get(objid)

    def record(self, entry):
        entry["time"] = time.monotonic()
        with self.lock:
            self.log.append(entry)

    def sleep(self, seconds):
        self._stop.wait(seconds)

    def find(self, ra, dec):
        key = (ra, dec)
        if key in self.by_position:
            return self.by_position[key]
        for (r, d), objid in self.by_position.items():
            if abs(r - ra) < 1e-9 and abs(d - dec) < 1e-9:
                return objid
        return None

    def skyserver_body(self, sql, fault):
        m = re.search(r"\bSELECT\s+TOP\s+(\d+)\s+(.*?)\s+FROM\b", sql, re.I | re.S)
        if not m:
            return None
        top = int(m.group(1))
        columns = [c.strip().split(".")[-1] for c in m.group(2).split(",")]
        after = re.search(r"specObjID\s*>\s*(\d+)", sql)
        after = int(after.group(1)) if after else None
        rows = [r for r in self.rows if after is None or r["specObjID"] > after]
        cone = re.search(r"dbo\.fGetNearbyObjEq\(([^,()]+),([^,()]+),([^,()]+)\)", sql)
        if cone:
            ra0, dec0, radius = (float(x) for x in cone.groups())
            rows = [r for r in rows if _separation_arcmin(r["ra"], r["dec"], ra0, dec0)
                    <= radius]
        rows = rows[:top]
        if fault == "unordered":
            rows = rows[::-1]
        if fault == "no_rows":
            rows = []
        if fault == "missing_column":
            columns = [c for c in columns if c != "oh_p50"]
        header = [c.lower() if c == "DR7ObjID" else c for c in columns]
        lines = ["#Table1", ",".join(header)]
        for r in rows:
            values = []
            for c in columns:
                v = r.get(c, 1.0)
                if fault == "float_ids" and c in ("objID", "specObjID", "DR7ObjID"):
                    values.append(f"{float(v):.6e}")
                else:
                    values.append(repr(v) if isinstance(v, float) else str(v))
            lines.append(",".join(values))
        if fault == "garbled" and len(lines) > 2:
            lines[2] = lines[2][: len(lines[2]) // 2]
        return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep the test output clean
        pass

    @property
    def fake(self):
        return self.server.fake

    def send(self, status, body, content_type):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if SKYSERVER_PATH.match(parts.path):
            self.skyserver(parts.path, params)
        elif parts.path == HIPS2FITS_PATH:
            self.cutout("hips2fits", params)
        elif parts.path == LEGACY_PATH:
            self.cutout("legacysurvey", params)
        elif parts.path == LEGACY_FITS_PATH:
            self.cutout("legacysurvey", params, fits=True)
        else:
            self.fake.record({"kind": "unknown", "path": parts.path, "params": params})
            self.send(404, "<html><body>404 Not Found</body></html>", "text/html")

    def common_fault(self, fault):
        """Handle faults shared by all endpoints; True if the response is sent."""
        if fault == "slow":
            self.fake.sleep(self.fake.slow_seconds)
            return False  # then answer normally (too late for the client)
        if fault in ("503", "500", "429", "404"):
            headers = {"429": [("Retry-After", "0")]}.get(fault, [])
            body = f"<html><body><h1>{fault} Service Unavailable</h1></body></html>"
            self.send_response(int(fault))
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())
            return True
        if fault == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        if fault == "empty":
            self.send(200, b"", "text/plain")
            return True
        return False

    def skyserver(self, path, params):
        fake = self.fake
        fault = fake.next_fault("skyserver")
        fake.record({"kind": "skyserver", "path": path, "params": params, "fault": fault})
        if self.common_fault(fault):
            return
        if fault == "html":
            self.send(200, SDSS_HTML_ERROR, "text/html")
            return
        if params.get("format") != "csv" or "cmd" not in params:
            self.send(400, "<html><body>bad request</body></html>", "text/html")
            return
        body = fake.skyserver_body(params["cmd"], fault)
        if body is None:
            self.send(200, SDSS_HTML_ERROR, "text/html")
            return
        self.send(200, body, "text/plain")

    def cutout(self, kind, params, fits=False):
        fake = self.fake
        try:
            ra, dec = float(params["ra"]), float(params["dec"])
        except (KeyError, ValueError):
            ra = dec = None
        objid = fake.find(ra, dec) if ra is not None else None
        fault = fake.next_fault(kind, objid)
        fake.record({"kind": kind, "objID": objid, "params": params, "fault": fault,
                     "format": "fits" if fits else "jpg"})
        with fake.lock:
            fake.inflight += 1
            fake.max_inflight = max(fake.max_inflight, fake.inflight)
        try:
            if fake.cutout_delay:
                fake.sleep(fake.cutout_delay)
            if self.common_fault(fault):
                return
            if kind == "hips2fits":
                ok = (params.get("hips") == "CDS/P/SDSS9/color"
                      and params.get("format") == "jpg"
                      and params.get("projection") == "TAN"
                      and params.get("width") == params.get("height")
                      and "fov" in params)
                size = int(params.get("width", 0) or 0)
            else:
                ok = (params.get("layer") in (LEGACY_LAYERS if fits else ("sdss",))
                      and "pixscale" in params)
                size = int(params.get("size", 0) or 0)
            if not ok or objid is None or size <= 0:
                self.send(400, json.dumps({"title": "Bad request",
                                           "description": f"unexpected {params}"}),
                          "application/json")
                return
            if fault == "html":
                self.send(200, "<html><body>Temporarily unavailable</body></html>",
                          "text/html")
                return
            if fits:
                data = fits_bytes(size, len(params.get("bands", "grz")), seed=objid % 1000,
                                  blank=fault == "blank")
            else:
                data = jpeg_bytes(size, seed=objid % 1000,
                                  mode="L" if fault == "gray" else "RGB", blank=fault == "blank")
            if fault == "truncated":
                data = data[: len(data) // 2]
            self.send(200, data, "application/fits" if fits else "image/jpeg")
        finally:
            with fake.lock:
                fake.inflight -= 1


if __name__ == "__main__":  # pragma: no cover - manual runs, e.g. of `sfnet fetch`
    import argparse
    import random

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--fault-rate", type=float, default=0.1,
                        help="fraction of galaxies whose first cutout request fails (503, "
                             "truncated JPEG, slow, reset); a fifth as many fail always")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fake = FakeSDSS(n_rows=args.rows)
    rng = random.Random(args.seed)
    for row in fake.rows:
        x = rng.random()
        if x < args.fault_rate:
            fake.cutout_faults[row["objID"]] = [rng.choice(["503", "truncated", "slow",
                                                            "reset"])]
        elif x < 1.2 * args.fault_rate:
            fake.always_faults[row["objID"]] = rng.choice(["503", "truncated"])
    fake.skyserver_faults = ["503"]
    fake.slow_seconds = 5.0
    fake.start()
    print("[sfnet] section for ~/.astropy/config/sfnet.cfg (or sfnet.conf.set_temp):")
    print(f"skyserver_url = {fake.skyserver_url}")
    print(f"hips2fits_url = {fake.hips2fits_url}")
    print(f"legacysurvey_url = {fake.legacysurvey_url}")
    print("serving; Ctrl-C prints the request counts and stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
        kinds = {}
        for entry in fake.requests():
            kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
        print(f"requests by endpoint: {kinds}; max cutout requests in flight: "
              f"{fake.max_inflight}")
