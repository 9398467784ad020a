"""Where several processes keep their metrics (prometheus_client's multiprocess mode).

A module of its own, without prometheus_client: the variable must be set before that library
is first imported in the process, and `sandbank serve` calls this first thing.
"""

from __future__ import annotations

import os

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess(data_dir: os.PathLike[str] | str) -> str:
    """Point prometheus_client at DATA_DIR/metrics, emptied (a scrape sums every file there:
    the last run's would count twice). The worker processes inherit the environment."""
    path = os.path.join(os.fspath(data_dir), "metrics")
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    os.environ[MULTIPROC_ENV] = path
    return path
