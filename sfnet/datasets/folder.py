"""Read and write galaxy samples in the layout of the paper's data release.

The Zenodo record of Wu (2025) (doi:10.5281/zenodo.14712542) is a folder::

    galaxies.csv            objID + MPA-JHU / SkyServer columns, one row per galaxy
    images-sdss/{objID}.jpg 160 x 160 RGB JPEG cutouts

`load_galaxy_folder` turns such a folder into a `~sfnet.GalaxySample`, decoding
every JPEG once into a memory-mapped cache; `write_galaxy_folder` writes a
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
from ._layout import CATALOG_CSV, IMAGE_DIR, IMAGE_SUFFIX, read_catalog_csv, write_catalog_csv
from ..catalog import add_units as _add_units
from ..exceptions import DataDroppedWarning, ImageReadError
from ._store import (CATALOG_FILE, IMAGES_FILE, NpyWriter, build_dir, check_target_dir,
                     read_manifest, write_catalog, write_manifest)
from .sample import GalaxySample

__all__ = ["load_galaxy_folder", "write_galaxy_folder"]

#: Bump when decoding changes, so that old caches are not reused.
_LOADER_VERSION = 1
_SOURCE_KIND = "sfnet.load_galaxy_folder"
#: Decoded images in flight per worker thread (bounds memory outside the cache file).
_IN_FLIGHT_PER_WORKER = 4
#: How many dropped objIDs a warning names.
_N_SHOWN = 5


def load_galaxy_folder(path, *, image_dir=IMAGE_DIR, catalog=CATALOG_CSV,
                       image_size=None, cache=True, progress=True, n_workers=None):
    """Load a folder in the layout of the paper's data release.

    Parameters
    ----------
    path : str or path-like
        The folder holding ``catalog`` and ``image_dir``.
    image_dir : str
        Sub-folder with one ``{objID}.jpg`` per galaxy.
    catalog : str
        CSV file with an ``objID`` column (read as a 64-bit integer, never
        through float) and any other columns, whose names are kept.  Known
        SkyServer / MPA-JHU columns get units (``ra``/``dec`` in deg, line fluxes
        in 1e-17 erg s-1 cm-2, ...).
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
        If the CSV has no ``objID`` column, an objID that is not an integer,
        duplicate objIDs, or no usable image at all.

    Warns
    -----
    sfnet.exceptions.DataDroppedWarning
        One warning when rows are dropped because their image is missing,
        unreadable or truncated (`~sfnet.exceptions.ImageReadError`), or of a
        different size; it gives the count and the first objIDs and carries
        ``objids`` and ``reasons`` attributes listing them all.  It is issued
        again when the same result comes from the cache.

    Notes
    -----
    Grayscale, palette, CMYK and RGBA images are converted to RGB (alpha is
    discarded, not composited); nothing else is changed unless ``image_size``
    is given.  Images are decoded with PIL in a pool of threads and appended,
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
    root, csv_path, img_dir = _check_folder(path, catalog, image_dir)
    size = check_image_size(image_size)
    n_workers = check_workers(n_workers)
    cache_path, keyed = _resolve_cache(cache)

    csv_bytes = csv_path.read_bytes()
    listing = _list_images(img_dir)
    key = _cache_key(csv_bytes, image_dir, catalog, size, listing)
    if cache_path is not None:
        cache_path = _cache_dir_for(cache_path, keyed, key)
        hit = _open_cache(cache_path, key)
        if hit is not None:
            sample, source = hit
            _warn_dropped([tuple(d) for d in source.get("dropped", [])],
                          int(source.get("n_rows", len(sample))), root)
            return sample

    rows = _FolderRows(read_catalog_csv(csv_bytes, csv_path), csv_path, img_dir, listing)
    decode = functools.partial(rows.decode, size, n_workers, progress)
    if cache_path is None:
        sample = rows.to_memory(decode)
    else:
        source = {"kind": _SOURCE_KIND, "key": key, "folder": str(root.resolve()),
                  "image_dir": str(image_dir), "catalog": str(catalog),
                  "image_size": None if image_size is None else list(size),
                  "n_rows": rows.n_rows}
        build_dir(cache_path, functools.partial(rows.to_cache_dir, decode, source),
                  replace=True)
        sample = GalaxySample.load(cache_path, mmap=True)
    _warn_dropped(rows.dropped, rows.n_rows, root)
    return sample


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

    def __init__(self, table, csv_path, img_dir, listing):
        self.table, self.csv_path = table, csv_path
        self.objids = np.asarray(table["objID"])
        self.n_rows = len(table)
        self.paths = [img_dir / f"{objid}{IMAGE_SUFFIX}" for objid in self.objids]
        self.dropped = []          # (objID, category, detail)
        self.candidates = []       # CSV rows whose image file exists
        for row, objid in enumerate(self.objids):
            if self.paths[row].name in listing:
                self.candidates.append(row)
            else:
                self.dropped.append((int(objid), "missing", f"no file {self.paths[row]}"))

    def decode(self, size, n_workers, progress, open_sink):
        """Decode the candidates into ``open_sink(hw)``; return ``(catalog, hw)``.

        Raises ValueError if no image is usable; sorts ``dropped`` in CSV order.
        """
        kept, hw = _decode_all(self.candidates, self.objids, self.paths, size, n_workers,
                               progress, self.dropped, open_sink)
        if not kept:
            raise ValueError(f"no usable image for any of the {self.n_rows} galaxies in "
                             f"{self.csv_path}: {_summary(self.dropped)}")
        row_of = {int(o): i for i, o in enumerate(self.objids)}
        self.dropped.sort(key=lambda d: row_of[d[0]])
        return _add_units(self.table[kept]), hw

    def to_memory(self, decode):
        """``cache=False``: a `GalaxySample` decoded into memory by ``decode``."""
        sinks = []

        def open_array(hw):
            sinks[:] = [_ArraySink(len(self.candidates), hw)]
            return sinks[0]

        cat, _ = decode(open_array)
        return GalaxySample(sinks[0].array[:sinks[0].n], cat)

    def to_cache_dir(self, decode, source, tmp):
        """Fill the saved-sample directory ``tmp`` (a `build_dir` step) by ``decode``.

        ``source`` is the manifest's record of the folder; the dropped rows are
        added to it once known.
        """
        with open(tmp / IMAGES_FILE, "wb") as fh:
            writers = []

            def open_npy(hw):  # (re)start the file: the image size is now known
                fh.seek(0)
                fh.truncate()
                writers[:] = [NpyWriter(fh, len(self.candidates), tuple(hw) + (3,), np.uint8)]
                return writers[0]

            cat, hw = decode(open_npy)
            writers[0].close()
            fh.flush()
            os.fsync(fh.fileno())
        write_catalog(tmp / CATALOG_FILE, cat)
        source = {**source, "dropped": [list(d) for d in self.dropped]}
        write_manifest(tmp, len(cat), tuple(hw) + (3,), np.uint8, cat,
                       extra={"source": source})


def write_galaxy_folder(sample, path, *, image_dir=IMAGE_DIR, catalog=CATALOG_CSV,
                        quality=95, overwrite=False, n_workers=None, progress=False):
    """Write a sample in the layout read by `load_galaxy_folder`.

    Parameters
    ----------
    sample : GalaxySample
        The galaxies to write.
    path : str or path-like
        Folder to write into (created if needed).
    image_dir : str
        Sub-folder for the ``{objID}.jpg`` files.
    catalog : str
        Name of the CSV file (all catalog columns; units and meta are not kept
        by CSV, `load_galaxy_folder` restores the units of known columns).
    quality : int
        JPEG quality, 1--95.
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
    a partial file; the CSV is written last.  Images are read from the sample in
    chunks, so a memory-mapped sample is never loaded whole.
    """
    if not isinstance(sample, GalaxySample):
        raise TypeError(f"sample must be a GalaxySample, got {type(sample).__name__}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not (
            1 <= quality <= 95):
        raise ValueError(f"quality must be an integer from 1 to 95, got {quality!r}")
    n_workers = check_workers(n_workers)
    root = Path(path)
    csv_path = root / catalog
    if csv_path.exists() and not overwrite:
        raise FileExistsError(f"{csv_path} exists; pass overwrite=True to replace it")
    img_dir = root / image_dir
    img_dir.mkdir(parents=True, exist_ok=True)

    objids = np.asarray(sample.catalog["objID"])
    chunk = 256
    from tqdm.auto import tqdm

    with tqdm(total=len(sample), desc="writing images", unit="img",
              disable=not progress) as bar, ThreadPoolExecutor(n_workers) as pool:
        for start in range(0, len(sample), chunk):
            images = sample.read_images(slice(start, start + chunk))
            jobs = [(img_dir / f"{objids[start + i]}{IMAGE_SUFFIX}", images[i], quality)
                    for i in range(images.shape[0])]
            for _ in pool.map(lambda job: _write_jpeg(*job), jobs):
                bar.update(1)

    write_catalog_csv(csv_path, sample.catalog)
    return root


# ---------------------------------------------------------------------------
# decoding
def _decode_image(path, size=None, objid=None):
    """Decode one image file to an ``(H, W, 3)`` uint8 RGB array.

    Parameters
    ----------
    path : path-like
    size : (int, int), optional
        Resize to this ``(height, width)`` (Lanczos) if the image differs.
    objid : int, optional
        For the error message.

    Raises
    ------
    ImageReadError
        If the file is missing, not an image, truncated or cannot be converted.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != "RGB":
                im = im.convert("RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, objid, str(exc) or type(exc).__name__) from exc
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageReadError(path, objid, f"decoded to shape {arr.shape}")
    return arr


def _write_jpeg(path, image, quality):
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="JPEG",
                                                          quality=int(quality))


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
                 open_sink, desc="decoding images"):
    """Decode ``paths[rows]`` in threads, opening each file once, and append those
    of ``size`` to a sink, in order.

    ``size`` None: the size of the first image that decodes.  The sink is
    ``open_sink(size)``, called once that size is known.  Unreadable files are
    appended to ``dropped``; decodable images of another size are neither written
    nor dropped here but returned, so the caller can choose the majority size.

    Returns
    -------
    kept : list of int
        The rows written, in order.
    size : (int, int) or None
        The size written (None if nothing decoded).
    others : dict
        ``{row: (height, width)}`` of the images of another size, in row order.
    """
    from tqdm.auto import tqdm

    kept, others, sink = [], {}, None
    if size is not None:
        sink = open_sink(size)
    jobs = ((paths[row], resize, int(objids[row])) for row in rows)
    with tqdm(total=len(rows), desc=desc, unit="img", disable=not progress) as bar:
        for row, fut in zip(rows, _ordered_map(_decode_image, jobs, n_workers)):
            try:
                img = fut.result()
            except ImageReadError as exc:
                dropped.append((int(objids[row]), "unreadable", str(exc)))
            else:
                hw = img.shape[:2]
                if size is None:
                    size = hw
                    sink = open_sink(size)
                if hw == tuple(size):
                    sink.write(img[np.newaxis])
                    kept.append(row)
                else:
                    others[row] = hw
            bar.update(1)
    return kept, size, others


def _decode_all(candidates, objids, paths, size, n_workers, progress, dropped, open_sink):
    """Decode the candidate rows into ``open_sink(size)``; return ``(kept, size)``.

    With ``size`` given every image is resized to it.  Otherwise the images keep
    their size and only those of the most common size are kept (ties: the
    size met first), the others dropped as "wrong size".  Each file is opened
    once: the first decodable image's size is assumed to be the most common
    one, which it nearly always is; in the rare case it is not, the images of the
    most common size are decoded again into a new sink.
    """
    if size is not None:
        kept, size, others = _decode_rows(candidates, objids, paths, size, size, n_workers,
                                          progress, dropped, open_sink)
        for row, (h, w) in others.items():  # only if resizing failed to reach the size
            dropped.append((int(objids[row]), "wrong size", f"{paths[row]} is {w}x{h}"))
        return kept, size
    kept, first, others = _decode_rows(candidates, objids, paths, None, None, n_workers,
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
        kept, _, changed = _decode_rows(rerun, objids, paths, majority, None, n_workers,
                                        progress, dropped, open_sink,
                                        desc=f"decoding {majority[1]}x{majority[0]} images")
        wrong.update(changed)  # files that changed size since the first pass
    for row in sorted(wrong):
        h, w = wrong[row]
        dropped.append((int(objids[row]), "wrong size",
                        f"{paths[row]} is {w}x{h}, not {majority[1]}x{majority[0]} "
                        "like most images (pass image_size= to resize)"))
    return kept, majority


class _ArraySink:
    """In-memory stand-in for `NpyWriter` (``cache=False``)."""

    def __init__(self, n, hw):
        self.array = np.empty((n,) + tuple(hw) + (3,), dtype=np.uint8)
        self.n = 0

    def write(self, rows):
        self.array[self.n:self.n + rows.shape[0]] = rows
        self.n += rows.shape[0]


# ---------------------------------------------------------------------------
# cache
def _list_images(img_dir):
    """``{file name: (size, mtime_ns)}`` of the image files in ``img_dir``."""
    out = {}
    with os.scandir(img_dir) as it:
        for entry in it:
            if entry.name.endswith(IMAGE_SUFFIX) and entry.is_file():
                st = entry.stat()
                out[entry.name] = (st.st_size, st.st_mtime_ns)
    return out


def _cache_key(csv_bytes, image_dir, catalog, size, listing):
    h = hashlib.sha256()
    h.update(f"{_SOURCE_KIND} v{_LOADER_VERSION}\0{image_dir}\0{catalog}\0{size}\0"
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


def _warn_dropped(dropped, n_rows, root):
    if not dropped:
        return
    shown = "; ".join(f"{objid} ({cat}: {detail})" for objid, cat, detail in
                      dropped[:_N_SHOWN])
    more = f"; ... and {len(dropped) - _N_SHOWN} more" if len(dropped) > _N_SHOWN else ""
    msg = (f"dropped {len(dropped)} of {n_rows} galaxies in {root} whose image could "
           f"not be used ({_summary(dropped)}); first objIDs: {shown}{more}")
    warning = DataDroppedWarning(msg)
    warning.objids = np.array([d[0] for d in dropped], dtype=np.int64)
    warning.reasons = [f"{cat}: {detail}" for _, cat, detail in dropped]
    warnings.warn(warning, stacklevel=3)
