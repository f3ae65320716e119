#!/usr/bin/env python
"""Check the external links of the documentation; skip, saying so, without a network.

Run by ``tox -e linkcheck``.  The links are checked with Sphinx's linkcheck
builder (warnings are errors).  When none of the documentation's own external
hosts can be reached -- an offline machine -- the check is skipped with a
message and exit status 0, because it cannot say anything there.
"""

import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PROBES = 5  # how many distinct hosts to try


def external_hosts():
    """Hosts of the https links written in the documentation and the README, most used first."""
    counts = {}
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]
    for path in files:
        for url in re.findall(r"https://[^\s<>`\"')\]]+", path.read_text(encoding="utf-8")):
            host = urlsplit(url).netloc
            counts[host] = counts.get(host, 0) + 1
    return sorted(counts, key=counts.get, reverse=True)


def online(hosts, timeout=5):
    """True if any of ``hosts`` answers an HTTPS request (any HTTP status counts)."""
    for host in hosts[:PROBES]:
        try:
            urllib.request.urlopen(f"https://{host}/", timeout=timeout).close()
            return True
        except urllib.error.HTTPError:
            return True  # the host answered
        except (OSError, ValueError):
            continue
    return False


def main(argv):
    hosts = external_hosts()
    if not online(hosts):
        print(f"linkcheck SKIPPED: no network (none of {', '.join(hosts[:PROBES])} could be "
              "reached); run it again on a machine with internet access.")
        return 0
    cmd = [sys.executable, "-m", "sphinx", "-W", "-b", "linkcheck", str(ROOT / "docs"),
           str(ROOT / "docs" / "_build" / "linkcheck"), *argv]
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
