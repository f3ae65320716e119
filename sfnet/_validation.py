"""Argument checks shared by every public entry point.

Each check returns the value converted to its canonical type, or raises a
`TypeError` (wrong kind of object) or `ValueError` (right kind, bad value)
whose message names the argument.  Entry points validate everything before the
first request is sent or the first file is written.
"""

import math
import numbers
import os
from urllib.parse import urlsplit

import numpy as np
from astropy import units as u

__all__ = []


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def check_int(value, name, minimum=None, maximum=None, *, text_is_value_error=False):
    """An integer (NumPy integers included, bools and floats refused) within bounds.

    With ``text_is_value_error`` a string, bool or float is a `ValueError`
    (used where such text could otherwise end up in an SQL query).
    """
    wrong = _is_bool(value) or isinstance(value, (str, bytes)) or not isinstance(
        value, numbers.Integral)
    if wrong:
        exc = TypeError
        if text_is_value_error and (_is_bool(value)
                                    or isinstance(value, (str, bytes, numbers.Real))):
            exc = ValueError
        kind = "" if exc is ValueError else f"{type(value).__name__} "
        raise exc(f"{name} must be an integer, got {kind}{value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(value, name, unit=None, minimum=None, maximum=None, *, strict_min=False,
                text_is_value_error=False):
    """A finite real number (a Quantity converted to ``unit`` when one is given)."""
    if isinstance(value, u.Quantity):
        if unit is None:
            raise TypeError(f"{name} must be a plain number, got the Quantity {value!r}")
        try:
            value = value.to_value(unit)
        except u.UnitConversionError as exc:
            raise ValueError(f"{name} must be in units of {unit}, got {value!r}") from exc
        if np.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got {value!r}")
        value = float(value)
    if _is_bool(value) or isinstance(value, (str, bytes)) or not isinstance(value, numbers.Real):
        exc = ValueError if text_is_value_error and not isinstance(value, (list, tuple, dict)) \
            and (_is_bool(value) or isinstance(value, (str, bytes))) else TypeError
        what = "a number" + (" or an astropy Quantity" if unit is not None else "")
        raise exc(f"{name} must be {what}, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        if strict_min and minimum == 0:
            raise ValueError(f"{name} must be positive and finite, got {value}")
        raise ValueError(f"{name} must be {'>' if strict_min else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_range(value, name, unit=None):
    """``None`` or a ``(min, max)`` pair of numbers (either may be None) with min < max."""
    if value is None:
        return (None, None)
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a (min, max) pair of numbers or None, got {value!r}")
    lo, hi = (None if v is None else check_float(v, f"{name}[{i}]", unit=unit,
                                                 text_is_value_error=True)
              for i, v in enumerate(value))
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"{name} must have min < max, got {value!r}")
    return (lo, hi)


def check_bool(value, name):
    """True or False (NumPy bools included); anything else is a `TypeError`."""
    if not _is_bool(value):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value, name, choices):
    """One of ``choices`` (compared with ==); the message lists them."""
    choices = tuple(choices)
    if isinstance(value, (str, type(None), int, float)) and value in choices:
        return value
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_url(value, name):
    """An http(s) URL without whitespace."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a URL string, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(
            c.isspace() for c in value):
        raise ValueError(f"{name} must be an http(s) URL, got {value!r}")
    return value


def check_image_size(image_size, name="image_size"):
    """None, an int or an (height, width) pair of positive ints -> None or (h, w)."""
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not _is_bool(image_size):
        hw = (int(image_size), int(image_size))
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(
            isinstance(s, (int, np.integer)) and not _is_bool(s) for s in image_size):
        hw = (int(image_size[0]), int(image_size[1]))
    else:
        raise TypeError(f"{name} must be an int or (height, width), got {image_size!r}")
    if min(hw) < 1:
        raise ValueError(f"{name} must be positive, got {image_size!r}")
    return hw


def check_workers(n_workers, name="n_workers", default_max=8):
    """A positive worker count; None means the usable cores (at most ``default_max``)."""
    if n_workers is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not on Linux
            n = os.cpu_count() or 1
        return max(1, min(default_max, n))
    if _is_bool(n_workers) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise ValueError(f"{name} must be a positive integer, got {n_workers!r}")
    return int(n_workers)
