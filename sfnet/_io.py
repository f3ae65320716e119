"""Small private I/O helpers shared by sfnet modules: atomic writes, output-directory checks."""

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "json_safe", "NotADirectoryPathError", "check_output_dir", "check_output_file"]


class NotADirectoryPathError(NotADirectoryError, FileExistsError, ValueError):
    """An output directory given as a path that exists and is not a directory.

    The one exception of `check_output_dir`.  It is a `NotADirectoryError` (what
    the operating system raises for the same mistake, and what the CLI reports
    as a user error); it is also a `FileExistsError` and a `ValueError`, because
    `GalaxySample.save` raised the first and the cutout and report writers the
    second for this case, so callers catching either keep working.
    """


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    If the block raises (or the process is interrupted) the temporary file is
    removed and ``path`` is left untouched, so readers never see a half-written
    file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp",
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give normal permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: read once at import (os.umask is process-wide, so never toggled from threads)
_UMASK = _read_umask()


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj):
    """``obj`` with NumPy scalars/arrays and tuples as plain JSON types, NaN/inf as None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # NumPy arrays and scalars
        return json_safe(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def atomic_write_json(path, obj):
    """Write ``obj`` as indented, standard JSON (see `json_safe`) to ``path`` atomically."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _as_path(path, argument):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a path, got {path!r}")
    return Path(path)


def check_output_dir(path, argument="output", *, marker=None, what=None, overwrite=False):
    """Check an output directory before any work is done; return it as a `~pathlib.Path`.

    The one output-directory rule of sfnet: ``path`` may be new or an existing
    directory.  With ``marker`` (a file name), an existing non-empty directory
    must hold that file -- i.e. be an earlier output of the same kind
    (``what``), which is then replaced -- unless ``overwrite`` is true.
    Nothing is created.

    Parameters
    ----------
    path : str or path-like
        Where a directory is going to be written.
    argument : str
        The argument's name for the messages (``"--output"``, ``"output_dir"``...).
    marker : str or tuple of str, optional
        A file or folder (one of several) that an existing non-empty
        directory must hold.
    what : str, optional
        What ``marker`` stands for, for the message.
    overwrite : bool, optional
        Write into a non-empty directory without ``marker`` too.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        ``path`` is not a path.
    NotADirectoryPathError
        ``path`` exists and is not a directory (also a `FileExistsError`,
        `NotADirectoryError` and `ValueError`).
    FileExistsError
        With ``marker``: ``path`` is a non-empty directory without ``marker``.
    """
    path = _as_path(path, argument)
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryPathError(f"{argument} {str(path)!r} exists and is not a "
                                         "directory")
        markers = (marker,) if isinstance(marker, str) else tuple(marker or ())
        if markers and not overwrite and not any((path / m).exists() for m in markers) \
                and any(path.iterdir()):
            raise FileExistsError(f"{argument} {str(path)!r} is a non-empty directory that "
                                  f"is not {what or markers[0]}; refusing to write into it "
                                  f"(pass overwrite=True to write into it anyway)")
    return path


def check_output_file(path, argument="output", *, overwrite=False):
    """Check an output file before any work is done; return it as a `~pathlib.Path`.

    The file rule matching `check_output_dir`: ``path`` must not exist, unless
    ``overwrite`` is true (then it is replaced, atomically, by the writer);
    it is never a directory.  Nothing is created.

    Parameters
    ----------
    path : str or path-like
        Where a file is going to be written.
    argument : str
        The argument's name for the messages.
    overwrite : bool, optional
        Allow replacing an existing file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        ``path`` is not a path.
    IsADirectoryError
        ``path`` is a directory.
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    """
    path = _as_path(path, argument)
    if path.is_dir():
        raise IsADirectoryError(f"{argument} {str(path)!r} is a directory, not a file")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{argument} {str(path)!r} already exists; refusing to replace "
                              "it (pass overwrite=True to replace it)")
    return path
