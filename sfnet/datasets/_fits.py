"""FITS images of galaxy folders: read one (thread-safe, never zero-padded) and write one.

Private module behind `sfnet.datasets.load_galaxy_folder` and
`sfnet.datasets.write_galaxy_folder`.
"""

import gzip
import io
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes

__all__ = ["read_fits", "check_fits_length", "write_fits"]


def read_fits(path):
    """The float32 ``(H, W, C)`` image of a FITS file (primary HDU or first image HDU).

    Read from the file's bytes (gunzipped for ``.gz``), whose length is checked
    first (`check_fits_length`), so a short file is an error, never
    zero-padded.  (astropy pads a truncated file with zeros and says so only by
    a warning; catching that with `warnings.catch_warnings`, as sfnet did, is
    not safe in the decoding threads, which share the warning filters: a
    truncated file could pass, and a caller's own warning capture could be
    lost -- seen as a flaky test.)
    """
    from astropy.io import fits

    raw = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"not a complete gzip file: {exc}") from exc
    check_fits_length(raw, fits.Header)
    with fits.open(io.BytesIO(raw), memmap=False) as hdus:
        data = None
        for hdu in hdus:
            if hdu.is_image and hdu.data is not None and hdu.data.ndim >= 2:
                data = np.asarray(hdu.data, dtype=np.float32)
                break
        if data is None:
            raise ValueError("no image data in the primary HDU or an image extension")
    if data.ndim == 3:
        data = np.moveaxis(data, 0, -1)
    elif data.ndim == 2:
        data = data[:, :, np.newaxis]
    else:
        raise ValueError(f"FITS image has {data.ndim} axes; expected (H, W) or (bands, H, W)")
    return np.ascontiguousarray(data[::-1])  # FITS rows go up; row 0 = top as displayed


def check_fits_length(raw, header_class, block=2880):
    """Raise ValueError if the FITS bytes ``raw`` end before the data of their first
    HDU with an image (``NAXIS >= 2``) does.

    Each header is read with ``header_class.fromfile`` (astropy's `~astropy.io.fits.Header`),
    which stops at the header's end, and its data size is the standard's
    ``|BITPIX| / 8 * GCOUNT * (PCOUNT + NAXIS1 * ... * NAXISn)`` -- before astropy
    opens the file, which would pad a short one with zeros.
    """
    stream, start = io.BytesIO(raw), 0
    while start + block <= len(raw):
        stream.seek(start)
        header = header_class.fromfile(stream)
        naxis = int(header.get("NAXIS", 0))
        shape = [int(header.get(f"NAXIS{j}", 0)) for j in range(1, naxis + 1)]
        size = 0 if naxis == 0 else abs(int(header["BITPIX"])) // 8 * \
            int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + int(np.prod(shape)))
        data_start = stream.tell()
        if data_start + size > len(raw):
            raise ValueError(f"truncated FITS file: {len(raw)} bytes, the data of the HDU "
                             f"at byte {start} ends at byte {data_start + size}")
        if naxis >= 2:
            return
        start = data_start + -(-size // block) * block


def write_fits(path, image, quality=None):
    """Write ``(H, W, C)`` as a FITS primary image ``(C, H, W)`` (rows up), gzipped for
    ``.gz``, atomically."""
    from astropy.io import fits

    data = np.moveaxis(np.asarray(image, dtype=np.float32)[::-1], -1, 0)  # (C, H, W), y up
    if data.shape[0] == 1:
        data = data[0]
    buf = io.BytesIO()
    fits.PrimaryHDU(np.ascontiguousarray(data)).writeto(buf)
    raw = buf.getvalue()
    if str(path).endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    atomic_write_bytes(path, raw)
