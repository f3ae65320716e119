"""Read and write galaxy samples in the layout of the paper's data release.

The Zenodo record of Wu (2025) (doi:10.5281/zenodo.14712542) is a folder::

    galaxies.csv            objID + MPA-JHU / SkyServer columns, one row per galaxy
    images-sdss/{objID}.jpg 160 x 160 RGB JPEG cutouts

Your own folders may name the galaxies by any ID column (integers or strings)
and hold ``{id}.jpg``, ``.jpeg``, ``.png`` (grey or colour), ``.fits``,
``.fits.gz`` or ``.fit`` images (one band or a stack of bands, float fluxes);
an optional ``folder.json`` records the ID column, the image folder and the
suffix, so that a folder written by `write_galaxy_folder` or ``sfnet cutouts``
loads without arguments.

`load_galaxy_folder` turns such a folder into a `~sfnet.GalaxySample`, decoding
every image once into a memory-mapped cache; `write_galaxy_folder` writes a
sample in the same layout (used by tests and benchmarks; the same layout is
what `~sfnet.datasets.fetch_sdss_sample` fetches into).  The file names and the
``galaxies.csv`` reader and writer live in the private ``_layout`` module,
shared with the retrieval modules.
"""

import collections
import functools
import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .._io import atomic_path
from .._validation import check_image_size, check_workers
from ._fits import read_fits, write_fits
from ._layout import (CATALOG_CSV, FITS_SUFFIXES, ID_COLUMN, IMAGE_DIR, IMAGE_SUFFIX,
                      IMAGE_SUFFIXES, read_catalog_csv, read_folder_json, write_catalog_csv,
                      write_folder_json)
from ..catalog import add_units as _add_units
from ..exceptions import DataDroppedWarning, ImageReadError
from ._store import (CATALOG_FILE, IMAGES_FILE, NpyWriter, build_dir, check_id_column,
                     check_target_dir, read_manifest, write_catalog, write_manifest)
from .sample import GalaxySample

__all__ = ["load_galaxy_folder", "write_galaxy_folder"]

#: Bump when decoding changes, so that old caches are not reused.
_LOADER_VERSION = 2
_SOURCE_KIND = "sfnet.load_galaxy_folder"
#: Decoded images in flight per worker thread (bounds memory outside the cache file).
_IN_FLIGHT_PER_WORKER = 4
#: How many dropped objIDs a warning names.
_N_SHOWN = 5


def load_galaxy_folder(path, *, image_dir=None, catalog=CATALOG_CSV, id_column=None,
                       suffix=None, image_size=None, cache=True, progress=True,
                       n_workers=None):
    """Load a folder in the layout of the paper's data release (or your own).

    Parameters
    ----------
    path : str or path-like
        The folder holding ``catalog`` and ``image_dir``.
    image_dir : str, optional
        Sub-folder with one image ``{id}{suffix}`` per galaxy.  Default: the
        one recorded in the folder's ``folder.json``, else ``images-sdss``.
    catalog : str
        CSV file with the ID column and any other columns, whose names are
        kept.  Known SkyServer / MPA-JHU columns get units (``ra``/``dec`` in
        deg, line fluxes in 1e-17 erg s-1 cm-2, ...).
    id_column : str, optional
        The unique ID column that names the image files.  Default: the one
        recorded in ``folder.json``, else ``"objID"`` (read as a 64-bit
        integer, never through float).  Another column is read as int64 when
        every value is a canonical integer and as strings (exactly as written,
        e.g. ``"007"``) otherwise; `GalaxySample.id_column` remembers it.
    suffix : str, optional
        The image file name ending, e.g. ``".fits.gz"``.  Default: the one
        recorded in ``folder.json``, else each galaxy's first existing file of
        ``.jpg``, ``.jpeg``, ``.png``, ``.fits``, ``.fits.gz``, ``.fit`` (in
        that order).
    image_size : int or (int, int), optional
        Resize every image to this ``(height, width)`` with PIL's Lanczos
        filter.  By default images keep their size, and those whose size
        differs from the most common one are dropped (and reported).
    cache : bool or path-like
        ``True`` (default): decode into a saved-sample directory under
        ``sfnet.conf.cache_dir`` (or astropy's cache directory,
        ``<cache>/sfnet/folders/<key>``), keyed by a hash of the CSV bytes and
        the image files' names, sizes and modification times.  A later call on
        an unchanged folder only opens that directory (the images memory-mapped);
        a changed folder is decoded again.  A path: use that directory as the
        cache (it is a `GalaxySample.save` directory, loadable with
        `GalaxySample.load`).  ``False``: decode into memory, write nothing.
    progress : bool
        Show a progress bar while decoding.
    n_workers : int, optional
        Decoding threads (default: the number of usable CPUs, at most 8).

    Returns
    -------
    GalaxySample
        Rows in CSV order, minus those whose image could not be used.  With a
        cache the images are a read-only `numpy.memmap`.

    Raises
    ------
    FileNotFoundError
        If the folder, the CSV or the image folder does not exist.
    ValueError
        If the CSV has no ID column, an objID that is not an integer,
        duplicate IDs, no usable image at all, or images that disagree in
        their number of bands or their kind (8-bit vs float); that message
        names the first ID that disagrees with the first image.

    Warns
    -----
    sfnet.exceptions.DataDroppedWarning
        One warning when rows are dropped because their image is missing,
        unreadable or truncated (`~sfnet.exceptions.ImageReadError`), holds
        NaN or infinite pixels ("non-finite", never zero-filled), or is of a
        different size; it gives the count and the first IDs and carries
        ``objids`` (the IDs, int64 or strings) and ``reasons`` attributes
        listing them all.  It is issued again when the same result comes from
        the cache.

    Notes
    -----
    JPEG and PNG: colour (palette, CMYK, RGBA) images become 8-bit RGB, C = 3
    (alpha is discarded, not composited); a folder whose first image is grey
    loads as one channel (C = 1), and grey images among colour ones are
    repeated into three equal channels; 16-bit and float PNGs load as float32
    (C = 1).  FITS (astropy.io.fits, gzip included): the data of the primary
    HDU, or of the first image extension when the primary is empty; a 2-D
    image is one band (C = 1), a 3-D cube ``(bands, H, W)`` becomes
    ``(H, W, bands)``; values are float32 (scaling keywords applied) and the
    rows are flipped so that row 0 is the top of the image as displayed
    (FITS stores the bottom row first; JPEG cutouts of the same galaxies then
    have the same orientation).  Nothing else is changed unless
    ``image_size`` is given.  Images are decoded with PIL in a pool of threads and appended,
    in CSV order, to the cache's ``images.npy`` as they finish, so at most
    ``4 * n_workers`` decoded images are held in memory at any time, whatever
    the size of the folder.  The cache directory is built beside its final
    place and renamed into it, so an interrupted load leaves no partial cache.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from astropy.table import Table
    >>> from sfnet import GalaxySample
    >>> from sfnet.datasets import load_galaxy_folder, write_galaxy_folder
    >>> images = np.full((3, 16, 16, 3), 128, dtype=np.uint8)
    >>> ids = [1237648720693755918, 1237648720693755919, 1237648720693755920]
    >>> sample = GalaxySample(images, Table({"objID": ids, "ra": [1., 2., 3.],
    ...                                      "dec": [0., 0., 0.]}))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = write_galaxy_folder(sample, f"{tmp}/data")
    ...     loaded = load_galaxy_folder(folder, cache=False, progress=False)
    >>> loaded.catalog["objID"].tolist() == ids, loaded.image_shape
    (True, (16, 16, 3))
    >>> loaded.catalog["ra"].unit
    Unit("deg")
    """
    image_dir, id_column, suffixes = _layout_of(path, image_dir, id_column, suffix)
    root, csv_path, img_dir = _check_folder(path, catalog, image_dir)
    size = check_image_size(image_size)
    n_workers = check_workers(n_workers)
    cache_path, keyed = _resolve_cache(cache)

    csv_bytes = csv_path.read_bytes()
    listing = _list_images(img_dir, suffixes)
    key = _cache_key(csv_bytes, image_dir, catalog, size, listing,
                     extra=f"{id_column}\0{'|'.join(suffixes)}")
    if cache_path is not None:
        cache_path = _cache_dir_for(cache_path, keyed, key)
        hit = _open_cache(cache_path, key)
        if hit is not None:
            sample, source = hit
            _warn_dropped([tuple(d) for d in source.get("dropped", [])],
                          int(source.get("n_rows", len(sample))), root, id_column)
            return sample

    rows = _FolderRows(read_catalog_csv(csv_bytes, csv_path, id_column), csv_path, img_dir,
                       listing, id_column, suffixes)
    decode = functools.partial(rows.decode, size, n_workers, progress)
    if cache_path is None:
        sample = rows.to_memory(decode)
    else:
        source = {"kind": _SOURCE_KIND, "key": key, "folder": str(root.resolve()),
                  "image_dir": str(image_dir), "catalog": str(catalog),
                  "id_column": id_column,
                  "image_size": None if image_size is None else list(size),
                  "n_rows": rows.n_rows}
        build_dir(cache_path, functools.partial(rows.to_cache_dir, decode, source),
                  replace=True)
        sample = GalaxySample.load(cache_path, mmap=True)
    _warn_dropped(rows.dropped, rows.n_rows, root, id_column)
    return sample


def _layout_of(path, image_dir, id_column, suffix):
    """``(image_dir, id_column, suffixes)``: the arguments, else ``folder.json``, else defaults."""

    record = read_folder_json(Path(path)) if Path(path).is_dir() else {}
    if image_dir is None:
        image_dir = record.get("image_dir") or IMAGE_DIR
    if id_column is None:
        id_column = record.get("id_column") or ID_COLUMN
    check_id_column(id_column)
    if suffix is None:
        suffix = record.get("suffix") or None
    if suffix is None:
        suffixes = IMAGE_SUFFIXES
    elif isinstance(suffix, str) and suffix.startswith(".") and len(suffix) > 1 and \
            "/" not in suffix:
        suffixes = (suffix,)
    else:
        raise ValueError(f"suffix must be a file name ending such as '.fits.gz' (starting "
                         f"with '.'), got {suffix!r}")
    return image_dir, id_column, suffixes


def _check_folder(path, catalog, image_dir):
    """``(root, CSV path, image folder)``; FileNotFoundError naming the first missing."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"galaxy folder {root} does not exist")
    csv_path = root / catalog
    if not csv_path.is_file():
        raise FileNotFoundError(f"catalog file {csv_path} does not exist")
    img_dir = root / image_dir
    if not img_dir.is_dir():
        raise FileNotFoundError(f"image folder {img_dir} does not exist")
    return root, csv_path, img_dir


def _cache_dir_for(cache_path, keyed, key):
    """The cache directory for ``key``: under the cache root, or the given directory.

    A given directory that does not hold this key's cache must be one that may
    be replaced (a saved sample), checked here, before any decoding.
    """
    if keyed:
        return cache_path / key
    if not _holds_key(cache_path, key):
        check_target_dir(cache_path, overwrite=True)
    return cache_path


class _FolderRows:
    """The CSV rows of one `load_galaxy_folder` call and the rows dropped so far.

    Rows whose image file is not in ``listing`` are dropped as "missing" at
    once; the others (``candidates``) are decoded by `decode`.
    """

    def __init__(self, table, csv_path, img_dir, listing, id_column=ID_COLUMN,
                 suffixes=(IMAGE_SUFFIX,)):
        self.table, self.csv_path, self.id_column = table, csv_path, id_column
        self.objids = np.asarray(table[id_column])
        self.n_rows = len(table)
        self.paths = []
        self.dropped = []          # (ID, category, detail)
        self.candidates = []       # CSV rows whose image file exists
        for row, objid in enumerate(self.objids):
            names = [f"{objid}{s}" for s in suffixes]
            found = next((n for n in names if n in listing), None)
            self.paths.append(img_dir / (found or names[0]))
            if found is not None:
                self.candidates.append(row)
            else:
                detail = (f"no file {self.paths[row]}" if len(suffixes) == 1 else
                          f"no file {img_dir / objid!s}{{{','.join(suffixes)}}}")
                self.dropped.append((_plain_id(objid), "missing", detail))

    def decode(self, size, n_workers, progress, open_sink):
        """Decode the candidates into ``open_sink(hw)``; return ``(catalog, hw)``.

        Raises ValueError if no image is usable; sorts ``dropped`` in CSV order.
        """
        kept, hw = _decode_all(self.candidates, self.objids, self.paths, size, n_workers,
                               progress, self.dropped, open_sink)
        if not kept:
            raise ValueError(f"no usable image for any of the {self.n_rows} galaxies in "
                             f"{self.csv_path}: {_summary(self.dropped)}")
        row_of = {_plain_id(o): i for i, o in enumerate(self.objids)}
        self.dropped.sort(key=lambda d: row_of[d[0]])
        return _add_units(self.table[kept]), hw

    def to_memory(self, decode):
        """``cache=False``: a `GalaxySample` decoded into memory by ``decode``."""
        sinks = []

        def open_array(hw, kind):
            sinks[:] = [_ArraySink(len(self.candidates), hw, kind)]
            return sinks[0]

        cat, _ = decode(open_array)
        return GalaxySample(sinks[0].array[:sinks[0].n], cat, id_column=self.id_column)

    def to_cache_dir(self, decode, source, tmp):
        """Fill the saved-sample directory ``tmp`` (a `build_dir` step) by ``decode``.

        ``source`` is the manifest's record of the folder; the dropped rows are
        added to it once known.
        """
        with open(tmp / IMAGES_FILE, "wb") as fh:
            writers = []

            def open_npy(hw, kind):  # (re)start the file: the image size is now known
                fh.seek(0)
                fh.truncate()
                writers[:] = [NpyWriter(fh, len(self.candidates), tuple(hw) + (kind[0],),
                                        kind[1])]
                return writers[0]

            cat, hw = decode(open_npy)
            shape, dtype = writers[0].item_shape, writers[0].dtype
            writers[0].close()
            fh.flush()
            os.fsync(fh.fileno())
        write_catalog(tmp / CATALOG_FILE, cat)
        source = {**source, "dropped": [list(d) for d in self.dropped]}
        write_manifest(tmp, len(cat), shape, dtype, cat,
                       extra={"source": source, "id_column": self.id_column})


def write_galaxy_folder(sample, path, *, image_dir=IMAGE_DIR, catalog=CATALOG_CSV,
                        quality=95, overwrite=False, n_workers=None, progress=False,
                        format=None):
    """Write a sample in the layout read by `load_galaxy_folder`.

    Parameters
    ----------
    sample : GalaxySample
        The galaxies to write; the files are named by its `~GalaxySample.id_column`.
    path : str or path-like
        Folder to write into (created if needed).
    image_dir : str
        Sub-folder for the ``{id}.jpg`` (or ``.png``, ``.fits``, ``.fits.gz``) files.
    catalog : str
        Name of the CSV file (all catalog columns; units and meta are not kept
        by CSV, `load_galaxy_folder` restores the units of known columns).
    quality : int
        JPEG quality, 1--95.
    format : {"jpg", "png", "fits", "fits.gz"}, optional
        The image format.  Default: ``"jpg"`` for 8-bit images of 1 or 3
        channels (lossy), ``"fits"`` otherwise (float32 fluxes, any number of
        bands; a stack ``(bands, H, W)``, rows flipped back to FITS order).
        ``"png"`` is lossless for 8-bit images of 1 or 3 channels.
    overwrite : bool
        Allow writing over an existing catalog file.
    n_workers : int, optional
        Encoding threads.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    Every file is written to a temporary name and renamed, so readers never see
    a partial file; the CSV is written last.  ``folder.json`` records the ID
    column, the image folder and the suffix, so `load_galaxy_folder` (and
    ``sfnet train DIR``) read the folder back without arguments.  Images are read from the sample in
    chunks, so a memory-mapped sample is never loaded whole.
    """
    if not isinstance(sample, GalaxySample):
        raise TypeError(f"sample must be a GalaxySample, got {type(sample).__name__}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not (
            1 <= quality <= 95):
        raise ValueError(f"quality must be an integer from 1 to 95, got {quality!r}")
    n_workers = check_workers(n_workers)
    suffix, writer = _image_writer(format, sample)
    root = Path(path)
    csv_path = root / catalog
    if csv_path.exists() and not overwrite:
        raise FileExistsError(f"{csv_path} exists; pass overwrite=True to replace it")
    img_dir = root / image_dir
    img_dir.mkdir(parents=True, exist_ok=True)

    objids = sample.ids
    chunk = 256
    from tqdm.auto import tqdm

    with tqdm(total=len(sample), desc="writing images", unit="img",
              disable=not progress) as bar, ThreadPoolExecutor(n_workers) as pool:
        for start in range(0, len(sample), chunk):
            images = sample.read_images(slice(start, start + chunk))
            jobs = [(img_dir / f"{objids[start + i]}{suffix}", images[i], quality)
                    for i in range(images.shape[0])]
            for _ in pool.map(lambda job: writer(*job), jobs):
                bar.update(1)

    write_folder_json(root, sample.id_column, str(image_dir), suffix)
    write_catalog_csv(csv_path, sample.catalog)
    return root


def _image_writer(format, sample):
    """``(suffix, writer)`` for ``format`` (checked against the sample's images)."""
    writers = {"jpg": (".jpg", _write_jpeg), "png": (".png", _write_png),
               "fits": (".fits", write_fits), "fits.gz": (".fits.gz", write_fits)}
    c, dtype = sample.n_channels, sample.read_images(slice(0, 0)).dtype
    eight_bit = dtype == np.uint8 and c in (1, 3)
    if format is None:
        format = "jpg" if eight_bit else "fits"
    if format not in writers:
        raise ValueError(f"format must be one of {sorted(writers)}, got {format!r}")
    if format in ("jpg", "png") and not eight_bit:
        raise ValueError(f"format={format!r} holds 8-bit images of 1 or 3 channels; this "
                         f"sample has {c} channel(s) of {dtype} (use format='fits')")
    return writers[format]


# ---------------------------------------------------------------------------
# decoding
def _plain_id(objid):
    """An ID as a plain Python int or str (for messages, JSON and dict keys)."""
    return objid.item() if isinstance(objid, np.generic) else objid


def _decode_image(path, size=None, objid=None):
    """Decode one image file to an ``(H, W, C)`` array: uint8 (JPEG/PNG) or float32.

    Parameters
    ----------
    path : path-like
    size : (int, int), optional
        Resize to this ``(height, width)`` (Lanczos) if the image differs.
    objid : int or str, optional
        For the error message.

    Raises
    ------
    ImageReadError
        If the file is missing, not an image, truncated or cannot be converted,
        or (reason starting ``"non-finite"``) holds NaN or infinite pixels.
    """
    from PIL import Image

    name = str(path).lower()
    try:
        if name.endswith(FITS_SUFFIXES):
            arr = read_fits(path)
        else:
            with Image.open(path) as im:
                im.load()
                if im.mode in ("L", "1", "LA"):
                    im = im.convert("L")
                elif im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    im = im.convert("F")
                elif im.mode != "RGB":
                    im = im.convert("RGB")
                arr = np.asarray(im)
            arr = arr[:, :, np.newaxis] if arr.ndim == 2 else arr
            if arr.dtype != np.uint8:
                arr = arr.astype(np.float32)
        if size is not None and arr.shape[:2] != tuple(size):
            arr = _resize(arr, size)
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError,
            Image.DecompressionBombError, Warning) as exc:
        # (a Warning arrives as an exception where the filters say "error", e.g.
        # astropy's "File may have been truncated")
        raise ImageReadError(path, objid, str(exc) or type(exc).__name__) from exc
    if arr.ndim != 3 or arr.shape[2] < 1 or min(arr.shape[:2]) < 1:
        raise ImageReadError(path, objid, f"decoded to shape {arr.shape}")
    if arr.dtype != np.uint8:
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise ImageReadError(path, objid, f"non-finite: {bad} NaN or infinite pixel "
                                              f"value(s) of {arr.size}")
    return arr


def _resize(arr, size):
    """Resize ``(H, W, C)`` to ``size`` (height, width) with PIL's Lanczos, per channel."""
    from PIL import Image

    hw = (size[1], size[0])
    if arr.dtype == np.uint8 and arr.shape[2] in (1, 3):
        im = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        out = np.asarray(im.resize(hw, Image.Resampling.LANCZOS), dtype=np.uint8)
        return out[:, :, np.newaxis] if out.ndim == 2 else out
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(arr[:, :, c], dtype=np.float32),
                                        mode="F").resize(hw, Image.Resampling.LANCZOS))
             for c in range(arr.shape[2])]
    out = np.stack(chans, axis=-1)
    return out.astype(np.uint8) if arr.dtype == np.uint8 else out.astype(np.float32)


def _harmonise(img, kind, objid, path):
    """``img`` in the folder's ``kind`` = (C, dtype), or ValueError naming the galaxy."""
    c, dtype = kind
    if img.shape[2] == c and img.dtype == dtype:
        return img
    if img.dtype == np.uint8 and dtype == np.uint8 and img.shape[2] == 1 and c == 3:
        return np.repeat(img, 3, axis=2)  # a grey JPEG among colour ones, as before
    raise ValueError(f"image of {objid} ({path}) has {img.shape[2]} band(s) of {img.dtype} "
                     f"but the folder's first image has {c} band(s) of {np.dtype(dtype)}; all "
                     "images of a folder must agree in bands and kind (8-bit or float)")


def _write_jpeg(path, image, quality):
    from PIL import Image

    image = np.ascontiguousarray(image)
    if image.shape[-1] == 1:
        image = image[:, :, 0]
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=int(quality))


def _write_png(path, image, quality=None):
    from PIL import Image

    image = np.ascontiguousarray(image)
    if image.shape[-1] == 1:
        image = image[:, :, 0]
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def _ordered_map(fn, jobs, n_workers):
    """Run ``fn(*job)`` in threads; yield the futures in job order.

    At most ``_IN_FLIGHT_PER_WORKER * n_workers`` jobs are submitted ahead of the
    consumer, which bounds the results held in memory.
    """
    from PIL import Image

    Image.init()  # load the format plugins once, before threads race to
    window = _IN_FLIGHT_PER_WORKER * n_workers
    pending = collections.deque()
    with ThreadPoolExecutor(n_workers) as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(fn, *job))
                if len(pending) >= window:
                    yield pending.popleft()
            while pending:
                yield pending.popleft()
        finally:
            for fut in pending:
                fut.cancel()


def _decode_rows(rows, objids, paths, size, resize, n_workers, progress, dropped,
                 open_sink, desc="decoding images", kind=None):
    """Decode ``paths[rows]`` in threads, opening each file once, and append those
    of ``size`` to a sink, in order.

    ``size`` None: the size of the first image that decodes.  The sink is
    ``open_sink(size, kind)``, called once that size is known; ``kind`` is
    ``(C, dtype)`` of the first image that decodes unless given.  Unreadable
    files are appended to ``dropped``; decodable images of another size are
    neither written nor dropped here but returned, so the caller can choose the
    majority size.

    Returns
    -------
    kept : list of int
        The rows written, in order.
    size : (int, int) or None
        The size written (None if nothing decoded).
    others : dict
        ``{row: (height, width)}`` of the images of another size, in row order.
    kind : (int, numpy.dtype) or None
        The bands and dtype written.
    """
    from tqdm.auto import tqdm

    kept, others, sink = [], {}, None
    if size is not None and kind is not None:
        sink = open_sink(size, kind)
    jobs = ((paths[row], resize, _plain_id(objids[row])) for row in rows)
    with tqdm(total=len(rows), desc=desc, unit="img", disable=not progress) as bar:
        for row, fut in zip(rows, _ordered_map(_decode_image, jobs, n_workers)):
            objid = _plain_id(objids[row])
            try:
                img = fut.result()
            except ImageReadError as exc:
                cat = "non-finite" if exc.reason.startswith("non-finite") else "unreadable"
                dropped.append((objid, cat, str(exc)))
            else:
                if kind is None:
                    kind = (img.shape[2], img.dtype)
                img = _harmonise(img, kind, objid, paths[row])
                hw = img.shape[:2]
                if size is None:
                    size = hw
                if sink is None:
                    sink = open_sink(size, kind)
                if hw == tuple(size):
                    sink.write(img[np.newaxis])
                    kept.append(row)
                else:
                    others[row] = hw
            bar.update(1)
    return kept, size, others, kind


def _decode_all(candidates, objids, paths, size, n_workers, progress, dropped, open_sink):
    """Decode the candidate rows into ``open_sink(size, kind)``; return ``(kept, size)``.

    With ``size`` given every image is resized to it.  Otherwise the images keep
    their size and only those of the most common size are kept (ties: the
    size met first), the others dropped as "wrong size".  Each file is opened
    once: the first decodable image's size is assumed to be the most common
    one, which it nearly always is; in the rare case it is not, the images of the
    most common size are decoded again into a new sink.
    """
    if size is not None:
        kept, size, others, _ = _decode_rows(candidates, objids, paths, size, size, n_workers,
                                             progress, dropped, open_sink)
        for row, (h, w) in others.items():  # only if resizing failed to reach the size
            dropped.append((_plain_id(objids[row]), "wrong size", f"{paths[row]} is {w}x{h}"))
        return kept, size
    kept, first, others, kind = _decode_rows(candidates, objids, paths, None, None, n_workers,
                                             progress, dropped, open_sink)
    if first is None:
        return [], (0, 0)
    counts = collections.Counter({first: len(kept)})
    counts.update(others.values())
    majority = counts.most_common(1)[0][0]  # stable: a tie goes to the first size met
    wrong = others
    if majority != first:
        rerun = [row for row, hw in others.items() if hw == majority]
        wrong = {row: first for row in kept}
        wrong.update((row, hw) for row, hw in others.items() if hw != majority)
        kept, _, changed, _ = _decode_rows(rerun, objids, paths, majority, None, n_workers,
                                           progress, dropped, open_sink,
                                           desc=f"decoding {majority[1]}x{majority[0]} images",
                                           kind=kind)
        wrong.update(changed)  # files that changed size since the first pass
    for row in sorted(wrong):
        h, w = wrong[row]
        dropped.append((_plain_id(objids[row]), "wrong size",
                        f"{paths[row]} is {w}x{h}, not {majority[1]}x{majority[0]} "
                        "like most images (pass image_size= to resize)"))
    return kept, majority


class _ArraySink:
    """In-memory stand-in for `NpyWriter` (``cache=False``)."""

    def __init__(self, n, hw, kind=(3, np.uint8)):
        self.array = np.empty((n,) + tuple(hw) + (kind[0],), dtype=kind[1])
        self.n = 0

    def write(self, rows):
        self.array[self.n:self.n + rows.shape[0]] = rows
        self.n += rows.shape[0]


# ---------------------------------------------------------------------------
# cache
def _list_images(img_dir, suffixes=(IMAGE_SUFFIX,)):
    """``{file name: (size, mtime_ns)}`` of the image files in ``img_dir``."""
    out = {}
    suffixes = tuple(suffixes)
    with os.scandir(img_dir) as it:
        for entry in it:
            if entry.name.endswith(suffixes) and entry.is_file():
                st = entry.stat()
                out[entry.name] = (st.st_size, st.st_mtime_ns)
    return out


def _cache_key(csv_bytes, image_dir, catalog, size, listing, extra=""):
    h = hashlib.sha256()
    h.update(f"{_SOURCE_KIND} v{_LOADER_VERSION}\0{image_dir}\0{catalog}\0{size}\0{extra}\0"
             .encode())
    h.update(hashlib.sha256(csv_bytes).digest())
    for name in sorted(listing):
        st_size, mtime = listing[name]
        h.update(f"{name}\0{st_size}\0{mtime}\n".encode())
    return h.hexdigest()[:32]


def _resolve_cache(cache):
    """``(directory, keyed)``: the cache root (keyed) or the exact directory."""
    if cache is None or cache is False:
        return None, False
    if cache is True:
        from ..config import conf

        root = conf.cache_dir
        if not root:
            from astropy.config import get_cache_dir

            root = Path(get_cache_dir()) / "sfnet"
        return Path(root).expanduser() / "folders", True
    if isinstance(cache, (str, os.PathLike)):
        return Path(cache).expanduser(), False
    raise TypeError(f"cache must be True, False or a directory path, got {cache!r}")


def _holds_key(directory, key):
    try:
        return read_manifest(directory).get("source", {}).get("key") == key
    except (OSError, ValueError):
        return False


def _open_cache(directory, key):
    """``(sample, source)`` if ``directory`` is a valid cache for ``key``."""
    if not directory.is_dir():
        return None
    try:
        source = read_manifest(directory).get("source", {})
        if source.get("kind") != _SOURCE_KIND or source.get("key") != key:
            return None
        return GalaxySample.load(directory, mmap=True), source
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------
# reporting and argument checks
def _summary(dropped):
    counts = collections.Counter(cat for _, cat, _ in dropped)
    return ", ".join(f"{n} {cat}" for cat, n in counts.items())


def _warn_dropped(dropped, n_rows, root, id_column=ID_COLUMN):
    if not dropped:
        return
    shown = "; ".join(f"{objid} ({cat}: {detail})" for objid, cat, detail in
                      dropped[:_N_SHOWN])
    more = f"; ... and {len(dropped) - _N_SHOWN} more" if len(dropped) > _N_SHOWN else ""
    msg = (f"dropped {len(dropped)} of {n_rows} galaxies in {root} whose image could "
           f"not be used ({_summary(dropped)}); first {id_column}s: {shown}{more}")
    warning = DataDroppedWarning(msg)
    ids = [d[0] for d in dropped]
    warning.objids = (np.array(ids, dtype=np.int64) if all(isinstance(i, int) for i in ids)
                      else np.array([str(i) for i in ids]))
    warning.reasons = [f"{cat}: {detail}" for _, cat, detail in dropped]
    warnings.warn(warning, stacklevel=3)
