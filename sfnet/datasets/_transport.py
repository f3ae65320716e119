"""Private HTTP transport of the retrieval: retries, rate limit, timeouts, progress, pool.

Nothing here knows about SDSS.  The service modules
(`sfnet.datasets.skyserver`, `sfnet.datasets.cutouts`) describe *what* to
fetch (a function that performs one attempt); this module decides *how*:

* classifying an answer: `raise_for_status` (HTTP 408/429/5xx are
  `TransientError` with the server's ``Retry-After``, other non-200 answers
  `PermanentError`), `looks_like_html` and `html_text` for error pages;
* patience: `retry_policy` (validated ``max_retries``/``retry_backoff``, default
  ``sfnet.conf.max_retries``), `check_timeout` (default ``sfnet.conf.timeout``),
  `call_with_retries` (exponential backoff with jitter);
* politeness: `RateLimiter` (request starts per second across all workers),
  `run_pool` (at most ``max_workers`` requests in flight), `SessionPool`
  (one keep-alive session per thread, sfnet's `user_agent`);
* reporting: `Counters`, `Failure`, `write_failure_manifest` and
  `progress_bar`; a clean stop on Ctrl-C (pending work is cancelled, no
  half-written file is left because every write goes through `sfnet._io`).

Helpers have plain names; the service modules import them by name.
"""

import concurrent.futures as cf
import csv
import html
import io
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field

from astropy import units as u

from .._io import atomic_write_text
from .._validation import check_float, check_int
from ..config import conf

__all__ = []  # private module

#: HTTP status codes worth retrying: rate limited or a server-side problem.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})


class TransientError(Exception):
    """One attempt failed in a way that may succeed if repeated.

    Parameters
    ----------
    message : str
        What happened (kept as the galaxy's "last error").
    retry_after : float, optional
        Server-requested delay in seconds (``Retry-After``), if any.
    """

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """One attempt failed in a way that repeating will not fix (HTTP 4xx, blank image)."""


class Cancelled(Exception):
    """The run was stopped (Ctrl-C) before this task finished."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    Parameters
    ----------
    max_retries : int
        Retries after the first attempt (so at most ``max_retries + 1`` attempts).
    backoff : float
        Base delay in seconds; the delay before retry ``i`` (0-based) is drawn
        uniformly from ``[d/2, d]`` with ``d = min(max_backoff, backoff * 2**i)``
        ("equal jitter"), so simultaneous failures do not retry in lockstep.
    max_backoff : float
        Upper bound of one delay, in seconds.
    """

    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0

    def delay(self, retry_index, rng, retry_after=None):
        """Seconds to wait before retry number ``retry_index`` (0-based)."""
        d = min(self.max_backoff, self.backoff * 2.0 ** retry_index)
        wait = d / 2.0 + rng.uniform(0.0, d / 2.0)
        if retry_after is not None:
            wait = max(wait, min(float(retry_after), self.max_backoff))
        return wait


class RateLimiter:
    """Thread-safe limit on request *starts* per second (evenly spaced slots).

    Parameters
    ----------
    rate : float or None
        Requests per second across all threads; ``None`` or ``0`` disables it.
    clock, sleep : callable, optional
        Injectable time source and sleep (for tests).
    """

    def __init__(self, rate, clock=time.monotonic, sleep=time.sleep):
        self.interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = None

    def wait(self, stop=None):
        """Block until this caller may start a request; returns the wait in seconds."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = now if self._next is None or self._next < now else self._next
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            if stop is not None:
                stop.wait(delay)
            else:
                self._sleep(delay)
        return delay


@dataclass
class Counters:
    """Thread-safe run counters (requests sent, retries, outcomes)."""

    requests: int = 0
    retries: int = 0
    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                  compare=False)

    def add(self, **amounts):
        with self._lock:
            for name, value in amounts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self):
        with self._lock:
            return {"requests": self.requests, "retries": self.retries,
                    "downloaded": self.downloaded, "skipped": self.skipped,
                    "failed": self.failed}


def call_with_retries(attempt, policy, counters, *, stop=None, limiter=None, rng=None):
    """Run ``attempt()`` until it succeeds, fails permanently or retries run out.

    ``attempt`` performs one request and returns the result, or raises
    `TransientError` (retried) or `PermanentError` (not retried).  Each call
    counts as one request in ``counters``.

    Returns
    -------
    (result, n_attempts)

    Raises
    ------
    TransientError, PermanentError
        The last error, with ``n_attempts`` set on it.
    Cancelled
        ``stop`` was set.
    """
    rng = rng or random.Random()
    n = 0
    while True:
        if stop is not None and stop.is_set():
            raise Cancelled()
        if limiter is not None:
            limiter.wait(stop)
            if stop is not None and stop.is_set():
                raise Cancelled()
        n += 1
        counters.add(requests=1)
        try:
            return attempt(), n
        except PermanentError as exc:
            exc.n_attempts = n
            raise
        except TransientError as exc:
            exc.n_attempts = n
            if n > policy.max_retries:
                raise
            counters.add(retries=1)
            delay = policy.delay(n - 1, rng, exc.retry_after)
            if stop is not None:
                if stop.wait(delay):
                    raise Cancelled() from exc
            else:
                time.sleep(delay)


@dataclass
class Failure:
    """A task that did not succeed: its key, the attempts made and the last error."""

    key: object
    attempts: int
    error: str
    extra: dict = field(default_factory=dict)


def run_pool(tasks, work, *, max_workers, progress_bar=None, on_done=None):
    """Run ``work(task)`` over ``tasks`` with at most ``max_workers`` in flight.

    Submission is bounded (never more than ``2 * max_workers`` futures
    queued), so a 250k-galaxy run does not build 250k futures up front.  On
    ``KeyboardInterrupt`` (or any exception in this thread) the ``stop`` event
    is set, queued tasks are cancelled, running ones finish their current
    step, and the exception propagates.

    ``work(task, stop)`` must return a value or raise; an exception from one
    task never stops the others: it is returned as the task's outcome.

    Returns
    -------
    list of (task, outcome) where outcome is the return value or the exception.
    """
    stop = threading.Event()
    results = []
    pending = {}
    tasks = iter(tasks)
    executor = cf.ThreadPoolExecutor(max_workers=max_workers,
                                     thread_name_prefix="sfnet-download")
    clean = False
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * max_workers:
                try:
                    task = next(tasks)
                except StopIteration:
                    exhausted = True
                    break
                pending[executor.submit(work, task, stop)] = task
            if not pending:
                break
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                task = pending.pop(fut)
                exc = fut.exception()
                outcome = exc if exc is not None else fut.result()
                results.append((task, outcome))
                if on_done is not None:
                    on_done(task, outcome)
                if progress_bar is not None:
                    progress_bar.update(1)
        clean = True
    finally:
        if not clean:
            stop.set()
        # On an interrupt do not wait for requests in flight (they end within
        # one timeout and write atomically); otherwise wait for the threads.
        executor.shutdown(wait=clean, cancel_futures=True)
    return results


def write_failure_manifest(path, failures, columns=("objID", "ra", "dec")):
    """Write the failures as CSV (``columns`` from ``extra``, then attempts and error).

    Always written (header only when nothing failed), so the file on disk
    describes the latest run.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns) + ["attempts", "error"])
    for f in failures:
        writer.writerow([f.extra.get(c, "") for c in columns] + [f.attempts, f.error])
    atomic_write_text(path, buf.getvalue())


def retry_after(response):
    """The server's ``Retry-After`` delay in seconds (non-negative), or None."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def html_text(text, limit=400):
    """The readable text of an HTML error page, shortened to ``limit`` characters."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = re.sub(r"(?s)<[^>]*>", " ", text)
    text = " ".join(html.unescape(text).split())
    return text[:limit] + ("..." if len(text) > limit else "")


def looks_like_html(text):
    """True if a (stripped) answer that should be data is an HTML page."""
    head = text[:4000].lower()
    return text.startswith("<") or "<html" in head or "<body" in head


def raise_for_status(response, *, source="", snippet=200):
    """Raise `TransientError` or `PermanentError` unless the answer is HTTP 200.

    Parameters
    ----------
    response : requests.Response
    source : str
        Named in the message (``"HTTP 503 from {source}"``) when given.
    snippet : int
        Characters of the error page's text kept in a permanent error.
    """
    status = response.status_code
    where = f" from {source}" if source else ""
    if status in RETRYABLE_STATUS:
        raise TransientError(f"HTTP {status}{where}", retry_after=retry_after(response))
    if status != 200:
        raise PermanentError(f"HTTP {status}{where}: {html_text(response.text, snippet)!r}")


def retry_policy(max_retries=None, retry_backoff=1.0):
    """A validated `RetryPolicy`; ``max_retries=None`` means ``sfnet.conf.max_retries``."""
    max_retries = check_int(conf.max_retries if max_retries is None else max_retries,
                            "max_retries", minimum=0, maximum=100, text_is_value_error=True)
    retry_backoff = check_float(retry_backoff, "retry_backoff", minimum=0.0, maximum=3600.0,
                                text_is_value_error=True)
    return RetryPolicy(max_retries=max_retries, backoff=retry_backoff,
                       max_backoff=max(60.0, retry_backoff))


def check_timeout(timeout=None):
    """Seconds per request (float or time Quantity); ``None`` means ``sfnet.conf.timeout``."""
    return check_float(conf.timeout if timeout is None else timeout, "timeout",
                       unit=u.s, minimum=0.0, strict_min=True, text_is_value_error=True)


def check_max_workers(max_workers=None):
    """Concurrent requests (1-64); ``None`` means ``sfnet.conf.max_workers``."""
    return check_int(conf.max_workers if max_workers is None else max_workers,
                     "max_workers", minimum=1, maximum=64, text_is_value_error=True)


def check_rate_limit(rate_limit):
    """Request starts per second (float or frequency Quantity), or None for no limit."""
    return None if rate_limit is None else check_float(
        rate_limit, "rate_limit", unit=u.Hz, minimum=0.0, strict_min=True,
        text_is_value_error=True)


def sfnet_version():
    """The installed sfnet version (recorded in provenance and the user agent)."""
    from .. import __version__
    return __version__


def user_agent():
    """The ``User-Agent`` of sfnet's requests: ``sfnet/<version> python-requests/<version>``."""
    import requests

    return f"sfnet/{sfnet_version()} python-requests/{requests.__version__}"


def progress_bar(progress, **kwargs):
    """A tqdm bar on stderr (disabled unless ``progress``)."""
    from tqdm.auto import tqdm

    return tqdm(disable=not progress, file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
                **kwargs)


class SessionPool:
    """One `requests.Session` per worker thread (sessions are not thread-safe).

    Each session keeps its connection alive to the service, which is both
    faster and kinder to the server than a new connection per cutout.
    """

    def __init__(self, user_agent):
        self.user_agent = user_agent
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions = []

    def get(self):
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self):
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
