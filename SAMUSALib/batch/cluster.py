"""Where the cases run: a Dask LocalCluster on this machine, or a running scheduler.

`open_client` starts ``workers`` worker processes with one thread each (the model is
the parallel unit; torch inside a worker then uses one thread, as Dask's nanny sets
OMP_NUM_THREADS=1), or connects to ``scheduler`` (``tcp://host:8786``; see the README for
SLURM through dask-jobqueue and Kubernetes). `run_tasks` submits one task per case,
draws one progress bar across cases, and returns each case's result or a `TaskFailure`
in input order; one failing case never stops the others. A worker killed while running
a case is noticed by the scheduler, which runs the case again on another worker (up to
``distributed.scheduler.allowed-failures`` times, 3 by default).
"""

from __future__ import annotations

import logging
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from ..errors import InputError
from .worker import TOPIC

log = logging.getLogger("samusa")
CONNECT_SECONDS = 30


@dataclass
class TaskFailure:
    """A case whose task raised (a bug, not a user error) or whose workers kept dying."""

    message: str


def _distributed():
    try:
        import distributed
    except ImportError:
        raise InputError(
            "batch runs need Dask distributed: pip install \"dask[distributed]==2026.8.0\""
        ) from None
    return distributed


@contextmanager
def open_client(scheduler: str | None = None, workers: int = 2, *, threads_per_worker: int = 1) -> Iterator[Any]:
    """A Dask client: on a running scheduler, else on a new LocalCluster that is shut down
    on exit."""
    distributed = _distributed()
    if log.getEffectiveLevel() > logging.INFO:  # Dask logs every worker start and stop at INFO
        logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}; is it running?") from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise InputError(f"--workers must be at least 1; got {workers}")
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
        dashboard_address=None, silence_logs=logging.ERROR,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _bar(total: int, description: str, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="case", file=sys.stderr)


def _completed(distributed, futures, timeout: float | None):
    """Futures as they finish; a run past `timeout` seconds stops with one clear line."""
    try:
        yield from distributed.as_completed(futures, timeout=timeout)
    except TimeoutError:
        from ..errors import SamusaError

        raise SamusaError(f"the batch did not finish within --timeout {timeout:g} s; the cases done so far are written") from None


def run_tasks(
    client,
    function: Callable,
    items: Sequence[Any],
    extra: Any,
    *,
    labels: Sequence[str],
    description: str,
    quiet: bool = False,
    scatter: bool = False,
    on_event: Callable[[dict], None] | None = None,
    on_result: Callable[[int, Any], None] | None = None,
    timeout: float | None = None,
) -> list[Any]:
    """``function(item, extra)`` for every item on the cluster; results (or TaskFailure)
    in the order of ``items``. ``on_event`` receives the workers' event dicts (see
    `.worker.emit`); past ``timeout`` (seconds, whole run) a SamusaError says so."""
    distributed = _distributed()
    if on_event is not None:
        client.subscribe_topic(TOPIC, lambda event: on_event(event[1]))
    run = uuid.uuid4().hex[:8]
    payload = client.scatter(list(items), hash=False) if scatter else list(items)
    futures = [
        client.submit(function, item, extra, key=f"samusa-{label}-{run}", pure=False)
        for item, label in zip(payload, labels)
    ]
    position = {future.key: i for i, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    bar = _bar(len(futures), description, quiet)
    try:
        for future in _completed(distributed, futures, timeout):
            index = position[future.key]
            try:
                results[index] = future.result()
            except distributed.KilledWorker:
                results[index] = TaskFailure("its worker died on every attempt (out of memory? see the worker logs)")
            except Exception as exc:  # a bug in one case must not stop the others
                results[index] = TaskFailure(f"{type(exc).__name__}: {exc}")
            if on_result is not None:
                on_result(index, results[index])
            if bar is not None:
                bar.set_postfix_str(str(labels[index])[:30], refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        client.cancel([f for f in futures if not f.done()])
        if on_event is not None:
            client.unsubscribe_topic(TOPIC)
    return results
