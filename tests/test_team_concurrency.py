"""A team on one shared store: 16 processes at once against PostgreSQL (blobs in S3) log runs, add
versions of the same datasets, register versions of the same model and move its aliases. Nothing
may be lost, numbered twice or skipped, every alias move must be in the audit log, and nothing may
hang: every process has a deadline and is killed by its PID when the test gives up on it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from collections import Counter

import pytest

from .conftest import PY, python_env

pytestmark = pytest.mark.slow

WORKERS = 16
RUNS = 5  # runs per worker
STEPS = 1_000  # steps per metric key; two keys: 2,000 points per run
SHARED_DATASETS = ("shared-a", "shared-b")
MODEL = "team-model"
MOVES_PER_ROUND = 4  # set_alias calls on `production` per round, besides `staging` with each version
WORKER_DEADLINE = 80.0  # seconds after the start: a worker still alive then dumps its stacks and exits
TEST_DEADLINE = 90.0  # seconds after the start: every worker must have ended (else all are killed)

WORKER = textwrap.dedent("""
    import faulthandler, json, os, random, sys, time, traceback
    go, out, idx, deadline = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    RUNS, STEPS, MOVES, MODEL = {runs}, {steps}, {moves}, {model!r}
    SHARED = {shared!r}
    # Everything the work imports, imported before the start: then all 16 really work at once.
    import mlops_jupyter as mj
    import mlops_jupyter.data.files, mlops_jupyter.data.statcache, mlops_jupyter.models.flavors  # noqa
    import mlops_jupyter.models.signature, mlops_jupyter.tracking.environment  # noqa
    import pandas, psycopg, pyarrow, s3fs, sklearn.base, sqlalchemy  # noqa
    from mlops_jupyter.exceptions import NotFound

    report = dict(runs=[], data=[], models=[], moves=[], unaliased=[], error=None)
    open(out + ".ready", "w").close()
    while not os.path.exists(go):
        time.sleep(0.002)
    # A deadlock or a lost wake-up shows as the stacks of every thread, not as a silent hang.
    faulthandler.dump_traceback_later(deadline, exit=True)
    rng = random.Random(idx)
    try:
        for r in range(RUNS):
            with mj.start_run(f"w{{idx}}-r{{r}}", params={{"worker": idx, "round": r}}) as run:
                for i in range(STEPS):
                    run.log_metric("loss", idx * 1e6 + r * 1e4 + i, step=i)
                    run.log_metric("acc", -(idx * 1e6 + r * 1e4 + i) - 0.5, step=i)
                report["runs"].append([run.run_id, r])
                for name in (*SHARED, f"own-{{idx}}"):
                    content = f"{{name}}: worker {{idx}} round {{r}}\\n".encode()
                    path = f"{{name}}.txt"
                    with open(path, "wb") as f:
                        f.write(content)
                    v = mj.data.add(path, name=name, message=f"w{{idx}} r{{r}}")
                    report["data"].append([name, v.version, content.decode(), bool(v.unchanged)])
                v = mj.models.register({{"worker": idx, "round": r}}, name=MODEL, pickle=True, alias="staging")
                report["models"].append([v.version, idx, r])
                report["moves"].append(["staging", None, v.version, False])  # from: whatever it was
            for m in range(MOVES):
                target = v.version if m % 2 == 0 else rng.randint(1, v.version)
                # the registry's set_alias also tells where the alias was (mj.models.alias does not)
                got, prev = mj.models._registry().set_alias(f"{{MODEL}}@v{{target}}", "production")
                assert got.version == target, (got.version, target)
                if prev != target:  # pointing an alias where it already points is no move
                    report["moves"].append(["production", prev, target, True])
            if r % 2 == idx % 2:
                mj.models.alias(f"{{MODEL}}@v{{v.version}}", "canary")
                report["moves"].append(["canary", None, v.version, False])
            else:
                try:
                    prev = mj.models.unalias(MODEL, "canary")
                    report["moves"].append(["canary", prev, None, True])
                except NotFound:
                    report["unaliased"].append(r)  # someone else removed it first: no move
    except BaseException:
        report["error"] = traceback.format_exc()
    from mlops_jupyter.store import current_store
    store = current_store()
    if store is not None and store._writer is not None:
        report["writer"] = dict(errors=store._writer.errors, dropped=store._writer.dropped)
    with open(out + ".tmp", "w") as f:
        json.dump(report, f)
    os.replace(out + ".tmp", out)
    sys.exit(1 if report["error"] else 0)
""").format(runs=RUNS, steps=STEPS, moves=MOVES_PER_ROUND, model=MODEL, shared=SHARED_DATASETS)


def _kill_all(procs) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _start_workers(tmp_path, store_url: str, artifacts_url: str) -> list[dict]:
    """Start the workers, release them together, and return their reports (asserting they all ended well)."""
    go = tmp_path / "go"
    t0 = time.monotonic()
    procs, outs, logs = [], [], []
    try:
        for i in range(WORKERS):
            home = tmp_path / f"member{i}"  # each member has a project folder of their own, one shared store
            (home / ".mlops").mkdir(parents=True)
            out = tmp_path / f"report{i}.json"
            log = open(tmp_path / f"stderr{i}.txt", "w+")
            env = python_env(MLOPS_STORE_URL=store_url, MLOPS_ARTIFACTS_URL=artifacts_url, MLOPS_HOME=str(home))
            procs.append(subprocess.Popen([PY, "-c", WORKER, str(go), str(out), str(i), str(WORKER_DEADLINE)],
                                          cwd=home, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=log))
            outs.append(out)
            logs.append(log)
        # The barrier: everyone has imported everything, then all start at once (and all open the
        # store, a fresh database, at once).
        deadline = time.monotonic() + 60
        while not all(os.path.exists(str(o) + ".ready") for o in outs):
            dead = [i for i, p in enumerate(procs) if p.poll() is not None]
            assert not dead, f"worker {dead[0]} ended before the start: {_tail(logs[dead[0]])}"
            assert time.monotonic() < deadline, "the workers did not get ready within 60 s"
            time.sleep(0.05)
        go.write_text("go")
        print(f"\nworkers ready after {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        deadline = time.monotonic() + TEST_DEADLINE
        for i, p in enumerate(procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"worker {i} still running {TEST_DEADLINE:.0f} s after the start (a deadlock?):"
                                     f" {_tail(logs[i])}") from None
        print(f"workers done after {time.monotonic() - t0:.1f} s")
    finally:
        _kill_all(procs)
    reports = []
    for i, (p, out, log) in enumerate(zip(procs, outs, logs)):
        err = _tail(log)
        log.close()
        assert out.exists(), f"worker {i} wrote no report (exit {p.returncode}): {err}"
        rep = json.loads(out.read_text())
        assert rep["error"] is None, f"worker {i} failed:\n{rep['error']}\n{err}"
        assert p.returncode == 0, f"worker {i} exited {p.returncode}: {err}"
        assert rep.get("writer") == {"errors": 0, "dropped": 0}, (i, rep.get("writer"), err)
        # Retried conflicts are fine; any warning (a background write that failed) is not.
        assert "Traceback" not in err and "mlops:" not in err, f"worker {i} stderr:\n{err}"
        reports.append(rep)
    return reports


def _tail(log, n: int = 4000) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-n:]


def test_sixteen_members_share_one_postgres_store(tmp_path, monkeypatch, postgres_url, s3_url):
    started = time.monotonic()
    reports = _start_workers(tmp_path, postgres_url, s3_url)
    elapsed = time.monotonic() - started

    import sqlalchemy as sa

    from mlops_jupyter.data.catalog import Catalog
    from mlops_jupyter.models.registry import Registry
    from mlops_jupyter.store import open_store
    from mlops_jupyter.store import schema as S

    for var, value in (("MLOPS_STORE_URL", postgres_url), ("MLOPS_ARTIFACTS_URL", s3_url),
                       ("MLOPS_HOME", str(tmp_path / "member0"))):
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path / "member0")
    store = open_store()
    meta = store.meta
    assert meta.dialect == "postgresql"

    # -- runs and every metric point, exactly -------------------------------------------------------------
    expected_runs = {run_id: (w, r) for w, rep in enumerate(reports) for run_id, r in rep["runs"]}
    assert len(expected_runs) == WORKERS * RUNS
    with meta.read() as conn:
        runs = {row.run_id: row for row in conn.execute(sa.select(S.runs))}
        points: dict[tuple, list] = {}
        for run_id, key, step, value in conn.execute(
                sa.select(S.metrics.c.run_id, S.metrics.c.key, S.metrics.c.step, S.metrics.c.value)
                .order_by(S.metrics.c.run_id, S.metrics.c.key, S.metrics.c.step)):
            points.setdefault((run_id, key), []).append((step, value))
        latest = {(r.run_id, r.key): (r.step, r.value, r.count) for r in conn.execute(sa.select(S.latest_metrics))}
    assert set(runs) == set(expected_runs)
    assert {r.status for r in runs.values()} == {"finished"}
    assert {r.name for r in runs.values()} == {f"w{w}-r{r}" for w, r in expected_runs.values()}
    assert sum(len(v) for v in points.values()) == WORKERS * RUNS * STEPS * 2
    for run_id, (w, r) in expected_runs.items():
        base = w * 1e6 + r * 1e4
        assert points[(run_id, "loss")] == [(i, base + i) for i in range(STEPS)], run_id
        assert points[(run_id, "acc")] == [(i, -(base + i) - 0.5) for i in range(STEPS)], run_id
        assert latest[(run_id, "loss")] == (STEPS - 1, base + STEPS - 1, STEPS)
        assert latest[(run_id, "acc")] == (STEPS - 1, -(base + STEPS - 1) - 0.5, STEPS)

    # -- data versions: 1..N per name, no gap, no duplicate, each one's own content ------------------------------
    catalog = Catalog(meta)
    made: dict[str, dict[int, str]] = {}
    for rep in reports:
        for name, version, content, unchanged in rep["data"]:
            assert not unchanged, (name, version)  # every add had new content
            assert version not in made.setdefault(name, {}), f"{name}@v{version} handed out twice"
            made[name][version] = content
    assert set(made) == {*SHARED_DATASETS, *(f"own-{i}" for i in range(WORKERS))}
    for name, by_version in made.items():
        n = WORKERS * RUNS if name in SHARED_DATASETS else RUNS
        assert sorted(by_version) == list(range(1, n + 1)), name
        stored = catalog.versions(name)
        assert [v.version for v in stored] == list(range(1, n + 1)), name
        for v in stored:
            v = catalog.get(v.ref)
            (f,) = v.files
            data = (store.blobs.get_bytes(f["digest"]) if f["pack"] is None
                    else store.blobs.read_member(f["pack"], f["pack_offset"], f["size"], f["digest"]))
            assert data.decode() == by_version[v.version], v.ref
    with meta.read() as conn:
        lineage = conn.execute(sa.select(sa.func.count()).select_from(S.lineage)).scalar()
    assert lineage == WORKERS * RUNS * (len(SHARED_DATASETS) + 1)

    # -- model versions: 1..N, each loads back as what its worker registered ------------------------------------
    registry = Registry(store)
    registered = {version: (w, r) for rep in reports for version, w, r in rep["models"]}
    assert sorted(registered) == list(range(1, WORKERS * RUNS + 1))
    for version, (w, r) in registered.items():
        assert registry.load(f"{MODEL}@v{version}", allow_pickle=True) == {"worker": w, "round": r}

    # -- every alias move in the audit log, as one unbroken chain per alias --------------------------------------
    ev = S.alias_events
    with meta.read() as conn:
        events = conn.execute(sa.select(ev).where(ev.c.name == MODEL).order_by(ev.c.id)).all()
        current = dict(conn.execute(sa.select(S.model_aliases.c.alias, S.model_aliases.c.version)
                                    .where(S.model_aliases.c.name == MODEL)).all())
    moves = [m for rep in reports for m in rep["moves"]]
    for alias in ("staging", "production", "canary"):
        told = [m for m in moves if m[0] == alias]
        logged = [e for e in events if e.alias == alias]
        assert len(logged) == len(told), (alias, len(logged), len(told))
        assert Counter(e.to_version for e in logged) == Counter(m[2] for m in told), alias
        # Where the worker learnt where the alias was (set_alias, unalias), the log says the same.
        known = Counter((m[1], m[2]) for m in told if m[3])
        assert not known - Counter((e.from_version, e.to_version) for e in logged), alias
        chain = [None] + [e.to_version for e in logged]
        assert [e.from_version for e in logged] == chain[:-1], f"{alias}: a move from a stale version"
        assert current.get(alias) == chain[-1], alias
    assert len(events) == len(moves)
    print(f"\n{WORKERS} workers: {elapsed:.1f} s; {len(moves)} alias moves, "
          f"{sum(len(r['unaliased']) for r in reports)} unalias calls that found it gone")


def test_a_transaction_postgres_rolls_back_is_run_again(postgres_url):
    """A serialization failure (SQLSTATE 40001) means PostgreSQL rolled the transaction back: the
    store runs it again from the start. A real conflict (a duplicate key) is not retried."""
    import sqlalchemy as sa

    from mlops_jupyter.store import schema as S
    from mlops_jupyter.store.metadata import MetadataStore

    meta = MetadataStore(postgres_url)
    try:
        d = S.datasets
        with meta.write() as conn:
            conn.execute(d.insert().values(name="d", kind="file", created=0.0))
        attempts = []

        def work(conn):
            attempts.append(1)
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            conn.execute(sa.select(d.c.created)).scalar()  # the snapshot is taken here
            if len(attempts) == 1:  # someone else changes the row after it, and commits
                with meta.write() as other:
                    other.execute(d.update().values(created=1.0))
            conn.execute(d.update().values(created=d.c.created + 10))

        meta.run_transaction(work)
        assert len(attempts) == 2
        with meta.read() as conn:
            assert conn.execute(sa.select(d.c.created)).scalar() == 11.0

        started = time.monotonic()
        with pytest.raises(sa.exc.IntegrityError):
            meta.run_transaction(lambda conn: conn.execute(d.insert().values(name="d", kind="file", created=0.0)))
        assert time.monotonic() - started < 5
    finally:
        meta.close()
