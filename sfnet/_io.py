"""Small private I/O helpers shared by sfnet modules: atomic writes, output-directory checks."""

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "json_safe", "NotADirectoryPathError", "check_output_dir"]


class NotADirectoryPathError(NotADirectoryError, FileExistsError, ValueError):
    """An output directory given as a path that exists and is not a directory.

    The one exception of `check_output_dir`.  It is a `NotADirectoryError` (what
    the operating system raises for the same mistake, and what the CLI reports
    as a user error); it is also a `FileExistsError` and a `ValueError`, because
    `GalaxySample.save` raised the first and the cutout and report writers the
    second for this case, so callers catching either keep working.
    """


def check_output_dir(path, name):
    """Whether the output directory ``path`` exists; refuse a path that is not one.

    Parameters
    ----------
    path : str or path-like
        Where a directory is going to be written.
    name : str
        The argument's name for the message (``"--output"``, ``"output_dir"``...).

    Returns
    -------
    bool
        True if ``path`` is an existing directory, False if nothing is there.

    Raises
    ------
    NotADirectoryPathError
        If ``path`` exists and is not a directory (the message names ``name``).
    """
    path = Path(path)
    if not path.exists():
        return False
    if not path.is_dir():
        raise NotADirectoryPathError(f"{name} {str(path)!r} exists and is not a directory")
    return True


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
