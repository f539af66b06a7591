"""Dask glue of ``qdlight batch`` and ``qdlight sweep``: client, tasks, results on disk, resume.

A :class:`Task` is a plain function with its arguments, a JSON-able
``spec`` (what the result depends on) and the path of its result file.
:func:`run` submits the tasks to a ``dask.distributed`` client
(``retries``: a task that raises, or whose worker dies, runs again),
shows progress (tqdm over :func:`distributed.as_completed`) and returns
the results.  Each task writes its result itself, on the worker, when it
is complete: one JSON document written atomically
(:func:`qdio._util.atomic_write`) that holds the result, the task key, a
fingerprint of ``spec`` and ``"complete": true``.  A rerun loads every
result whose file is complete and whose fingerprint matches and submits
only the rest, so a crash loses nothing but the tasks that were running;
leftover temporary files (``.NAME.*.tmp``, removed at the start of a
run), unreadable or truncated JSON and results of other inputs are never
taken as complete.

Tasks may depend on other tasks (``depends``): the dependencies' results
are appended to the task's positional arguments, as futures when they are
computed in the same run or as the loaded results when they were resumed.
The fingerprint of a dependent task covers its ``spec`` and its
dependencies' results, so it is computed again whenever a dependency is
(in this run, or in an earlier one that did not get to the dependant).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import hashlib
import json
import logging
import math
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ERROR_KEYS",
    "RESULT_VERSION",
    "RunSummary",
    "Task",
    "connect",
    "fingerprint",
    "jsonable",
    "load_result",
    "run",
    "write_result",
]

log = logging.getLogger("qdlight.dask")

RESULT_VERSION = 1
# result keys that record a failure: ``retry_errors`` computes such results again
ERROR_KEYS = ("error", "fit_error")


def jsonable(x: Any) -> Any:
    """``x`` with NumPy scalars and arrays as Python values and NaN / inf as None.

    >>> jsonable({"a": np.float64(1.5), "b": [float("nan"), np.arange(2)]})
    {'a': 1.5, 'b': [None, [0, 1]]}
    """
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def fingerprint(spec: Any) -> str:
    """SHA-256 of the canonical JSON of ``spec`` (keys sorted).

    >>> fingerprint({"b": 1, "a": 2.0}) == fingerprint({"a": 2.0, "b": 1})
    True
    """
    text = json.dumps(jsonable(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _with_deps(fp: str, deps: Sequence[Any]) -> str:
    """Fingerprint of a task of fingerprint ``fp`` with the dependency results ``deps``."""
    return fingerprint({"spec": fp, "depends": [fingerprint(d) for d in deps]}) if deps else fp


@dataclass(frozen=True)
class Task:
    """One unit of work with a result file.

    Attributes
    ----------
    key : str
        Unique name, e.g. ``"analyze/qd01/p00"``.
    path : Path
        Result file (JSON), written by the task when it is complete.
    fn : callable
        ``fn(*args, *dependency_results, **kwargs) -> dict`` (JSON-able);
        a module-level function, so that worker processes can import it.
    spec : dict
        JSON-able description of everything the result depends on; its
        :func:`fingerprint` (with the dependencies' results, if any) is
        stored with the result and checked on resume.
    args : tuple
    kwargs : dict
    depends : tuple of str
        Keys of tasks (earlier in the list given to :func:`run`) whose
        results are appended to ``args``.
    """

    key: str
    path: Path
    fn: Callable[..., dict[str, Any]]
    spec: Mapping[str, Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    depends: tuple[str, ...] = ()


def load_result(path: Path, fp: str, *, accept_errors: bool = True) -> dict[str, Any] | None:
    """The stored result at ``path`` if it is complete and of fingerprint ``fp``, else None.

    ``accept_errors=False`` also rejects results that record an error
    (a non-empty value of a key in :data:`ERROR_KEYS`), so that they are
    computed again.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # truncated or garbled: not complete
        log.info("%s: not a complete result (%s); computing it again", path, exc)
        return None
    if not (
        isinstance(doc, dict)
        and doc.get("complete") is True
        and doc.get("version") == RESULT_VERSION
        and doc.get("fingerprint") == fp
        and isinstance(doc.get("result"), dict)
    ):
        return None
    if not accept_errors and any(doc["result"].get(k) for k in ERROR_KEYS):
        return None
    return doc["result"]


def write_result(path: Path, key: str, fp: str, result: Mapping[str, Any]) -> None:
    """Write ``result`` to ``path`` atomically, marked complete with key and fingerprint."""
    from qdio._util import atomic_write

    doc = {
        "version": RESULT_VERSION,
        "key": key,
        "fingerprint": fp,
        "complete": True,
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "result": jsonable(result),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(doc, indent=1).encode("utf-8"))


def _execute(fn, path: Path, key: str, fp: str, args, kwargs, *deps) -> dict[str, Any]:
    """Run on a worker: compute, then write the result file (only when complete).

    ``fp`` is the fingerprint of the task's spec; the file gets the one that
    also covers the dependency results ``deps``.
    """
    result = fn(*args, *deps, **kwargs)
    if not isinstance(result, dict):
        raise TypeError(f"task {key}: {fn.__name__} returned {type(result).__name__}, not dict")
    write_result(path, key, _with_deps(fp, deps), result)
    return jsonable(result)


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int = 1,
    processes: bool = True,
) -> Iterator[Any]:
    """A ``distributed.Client``: of the scheduler at ``scheduler``, or of a new local cluster.

    The local cluster has ``workers`` worker processes (default: one per
    core) of ``threads_per_worker`` threads each (``processes=False``:
    threads in this process) and no dashboard; it is closed on exit.
    Worker processes are started with ``multiprocessing``'s spawn method:
    scripts that call this need the ``if __name__ == "__main__":`` guard.
    The ``distributed`` loggers show warnings only (their INFO messages,
    some thirty per cluster, only when the root logger is at INFO or below,
    as with ``qdlight -v``).
    """
    with _quiet_distributed():
        yield from _connect(scheduler, workers, threads_per_worker, processes)


@contextlib.contextmanager
def _quiet_distributed() -> Iterator[None]:
    """Raise the ``distributed`` logger to WARNING unless the root logger shows INFO."""
    import distributed  # noqa: F401  (its import sets the level of its loggers)

    logger = logging.getLogger("distributed")
    old = logger.level
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logger.setLevel(max(old, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(old)


def _connect(
    scheduler: str | None, workers: int | None, threads_per_worker: int, processes: bool
) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if workers is not None:
            raise ValueError("--workers applies to a local cluster, not to --scheduler")
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise OSError(f"--scheduler {scheduler}: cannot connect ({exc})") from exc
        with client:
            yield client
        return
    if workers is not None and workers < 1:
        raise ValueError(f"--workers {workers} must be >= 1")
    if threads_per_worker < 1:
        raise ValueError(f"--threads-per-worker {threads_per_worker} must be >= 1")
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            silence_logs=logging.WARNING,  # the workers' own log handlers
            dashboard_address=None,
            # the scheduler's HTTP endpoint on a free local port (default 8787: a warning
            # when another cluster holds it)
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@dataclass
class RunSummary:
    """What :func:`run` did.

    Attributes
    ----------
    results : dict
        Result of every task that has one (computed or resumed), by key.
    computed, resumed : list of str
        Keys computed in this run and loaded from earlier runs.
    failed : dict
        Keys of tasks that failed after their retries (or whose dependency
        did), with the error; they have no result file, so a rerun tries
        them again.
    """

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every task has a result."""
        return not self.failed


def _remove_leftovers(path: Path) -> None:
    """Remove the temporary files ``.NAME.*.tmp`` that atomic writes of ``path`` left behind."""
    pattern = f".{glob.escape(path.name)}.*.tmp"
    for tmp in path.parent.glob(pattern) if path.parent.is_dir() else ():
        try:
            tmp.unlink()
        except FileNotFoundError:  # removed meanwhile
            continue
        log.info("removed the leftover temporary file %s", tmp)


def run(
    client: Any,
    tasks: Sequence[Task],
    *,
    retries: int = 2,
    progress: bool = True,
    desc: str = "tasks",
    retry_errors: bool = False,
) -> RunSummary:
    """Run ``tasks`` on ``client``, skipping those with a complete result on disk.

    Parameters
    ----------
    client : distributed.Client
    tasks : sequence of Task
        Dependencies must come before the tasks that use them.
    retries : int
        Extra attempts of a task that raises (``client.submit(retries=)``);
        a task whose worker dies is rescheduled by the scheduler
        (``distributed.scheduler.allowed-failures``).
    progress : bool
        tqdm bar over the submitted tasks.
    retry_errors : bool
        Compute again the tasks whose stored result records an error (a key
        of :data:`ERROR_KEYS`).

    A task is computed when it has no complete stored result of its
    fingerprint, and always when one of its dependencies is computed in
    this run.  Leftover temporary files of result files (``.NAME.*.tmp``
    beside them, from killed runs) are removed first.

    Returns
    -------
    RunSummary
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("task keys must be unique")
    out = RunSummary()
    futures: dict[str, Any] = {}
    by_future: dict[str, str] = {}
    nonce = uuid.uuid4().hex[:8]  # fresh dask keys: never a stale result of an earlier run
    for t in tasks:
        _remove_leftovers(Path(t.path))
        fp = fingerprint(t.spec)
        deps = []
        for d in t.depends:
            if d in futures:
                deps.append(futures[d])
            elif d in out.results:
                deps.append(out.results[d])
            else:
                raise ValueError(f"task {t.key}: dependency {d!r} is not an earlier task")
        if not any(d in futures for d in t.depends):  # dependencies all resumed
            stored = load_result(t.path, _with_deps(fp, deps), accept_errors=not retry_errors)
            if stored is not None:
                out.results[t.key] = stored
                out.resumed.append(t.key)
                continue
        fut = client.submit(
            _execute,
            t.fn,
            t.path,
            t.key,
            fp,
            t.args,
            dict(t.kwargs),
            *deps,
            key=f"{t.key.replace('/', '-')}-{nonce}",
            retries=retries,
            pure=False,
        )
        futures[t.key] = fut
        by_future[fut.key] = t.key
    if out.resumed:
        log.info("resumed %d of %d tasks from earlier runs", len(out.resumed), len(tasks))
    bar = tqdm(total=len(futures), desc=desc, unit="task", disable=not progress or not futures)
    try:
        for fut in as_completed(list(futures.values())):
            key = by_future[fut.key]
            if fut.status == "finished":
                out.results[key] = fut.result()
                out.computed.append(key)
            else:
                try:
                    exc = fut.exception()
                except Exception as cancelled:  # a cancelled future raises instead
                    exc = cancelled
                out.failed[key] = f"{type(exc).__name__}: {exc}"
            del futures[key]  # drop the reference: the cluster may forget the result
            fut.release()
            bar.update(1)
    finally:
        bar.close()
        for fut in futures.values():
            fut.release()
    return out
