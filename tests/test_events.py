"""The event bus: a closed set of events, contained subscriber errors, subscribers writing in the
publisher's transaction, ``committed`` after the commit, integrations found by entry point."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

from mlops_jupyter import events
from mlops_jupyter.exceptions import MlopsError
from mlops_jupyter.store import schema as S

from .conftest import PY, python_env

pytestmark = pytest.mark.backends


@pytest.fixture
def subscribed():
    """Subscribe for the length of a test: subscribe(event, fn); everything is unsubscribed after."""
    added = []

    def subscribe(event, fn):
        events.subscribe(event, fn)
        added.append((event, fn))

    yield subscribe
    for event, fn in added:
        events.unsubscribe(event, fn)


def _model():
    return LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])


def _audit_rows(store, target: str) -> int:
    with store.meta.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(S.audit)
                            .where(S.audit.c.target == target)).scalar()


def test_the_set_of_events_is_closed():
    with pytest.raises(MlopsError, match="unknown event 'run.deleted'"):
        events.subscribe("run.deleted", print)
    with pytest.raises(MlopsError, match="run.started.* carries store, run_id"):
        events.publish("run.started", store=None)


def test_a_run_publishes_started_and_ended(store, subscribed):
    seen = []
    subscribed("run.started", lambda store, run_id: seen.append(("started", run_id)))
    subscribed("run.ended", lambda store, run_id, status: seen.append(("ended", run_id, status)))
    import mlops_jupyter as mj

    with mj.start_run("bus") as run:
        run.log_metric("loss", 0.5)
    with pytest.raises(ZeroDivisionError):
        with mj.start_run("fails") as failing:
            1 / 0
    assert seen == [("started", run.run_id), ("ended", run.run_id, "finished"),
                    ("started", failing.run_id), ("ended", failing.run_id, "failed")]


def test_a_failing_subscriber_is_reported_and_the_work_is_kept(store, subscribed):
    import mlops_jupyter as mj

    calls = []

    def broken(store, version_id, run_id):
        raise RuntimeError("integration down")

    subscribed("data.version_added", broken)
    subscribed("data.version_added", lambda store, version_id, run_id: calls.append(version_id))
    with pytest.warns(RuntimeWarning, match="broken failed on data.version_added .*integration down"):
        v = mj.data.add(pd.DataFrame({"x": range(10)}), name="numbers")
    assert calls == [v.id]  # the next subscriber still ran
    assert mj.data.get("numbers@v1").id == v.id


def test_a_subscriber_writes_in_the_publishers_transaction(store, subscribed, monkeypatch):
    """The outbox pattern: what a subscriber writes with the event's connection commits with the
    registration, or not at all."""
    from mlops_jupyter.store import audit

    def outbox(store, version_id, conn):
        audit.record(conn, "test.outbox", f"version:{version_id}", None, None, username="bus")

    subscribed("model.registered", outbox)
    from mlops_jupyter.models.registry import Registry

    reg = Registry(store)
    v = reg.register(_model(), name="churn")
    assert _audit_rows(store, f"version:{v.id}") == 1

    def fail_after(*args, **kwargs):  # the registration fails after the event: nothing is kept
        raise RuntimeError("disk full")

    monkeypatch.setattr(Registry, "_move_alias", fail_after)  # runs after model.registered
    with pytest.raises(RuntimeError, match="disk full"):
        reg.register(_model(), name="churn", alias="staging")
    with store.meta.read() as conn:
        versions = conn.execute(sa.select(S.model_versions.c.id).where(S.model_versions.c.name == "churn")).all()
        outboxed = conn.execute(sa.select(sa.func.count()).select_from(S.audit)
                                .where(S.audit.c.action == "test.outbox")).scalar()
    assert len(versions) == 1 and outboxed == 1


def test_a_failing_transactional_subscriber_rolls_back_alone(store, subscribed):
    """A subscriber that fails after writing leaves the publisher's transaction usable (PostgreSQL
    aborts a transaction on a failed statement: the subscriber runs in a savepoint)."""
    from mlops_jupyter.models.registry import Registry
    from mlops_jupyter.store import audit

    def half_written(store, version_id, conn):
        audit.record(conn, "test.half", f"version:{version_id}", None, None, username="bus")
        conn.execute(sa.text("SELECT no_such_column FROM runs"))  # fails inside the database

    subscribed("model.registered", half_written)
    with pytest.warns(RuntimeWarning, match="half_written failed on model.registered"):
        v = Registry(store).register(_model(), name="churn")
    assert Registry(store).get("churn@v1").id == v.id
    assert _audit_rows(store, f"version:{v.id}") == 0  # its own write went with it


def test_committed_follows_the_commit_with_what_it_carried(store, subscribed):
    from mlops_jupyter.models.registry import Registry

    seen = []

    def on_registered(store, version_id, conn):
        with store.meta.read() as other:  # another connection cannot see the version yet
            seen.append(("registered", other.execute(sa.select(sa.func.count()).select_from(
                S.model_versions)).scalar()))

    def on_committed(published):
        with store.meta.read() as other:
            seen.append(("committed", other.execute(sa.select(sa.func.count()).select_from(
                S.model_versions)).scalar(), [name for name, _ in published]))

    subscribed("model.registered", on_registered)
    subscribed("committed", on_committed)
    reg = Registry(store)
    v = reg.register(_model(), name="churn", alias="staging")
    reg.set_alias(v.ref, "production")
    assert seen == [("registered", 0), ("committed", 1, ["model.registered"]),
                    ("committed", 1, ["alias.moved"])]


def test_an_installed_integration_subscribes_through_its_entry_point(project, tmp_path):
    """A third-party integration: a distribution with an entry point in ``mlops_jupyter.integrations``
    is loaded at the first event and hears it."""
    site = tmp_path / "site"
    (site / "plug-0.1.dist-info").mkdir(parents=True)
    (site / "plug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: plug\nVersion: 0.1\n")
    (site / "plug-0.1.dist-info" / "entry_points.txt").write_text(
        "[mlops_jupyter.integrations]\nplug = plug_integration:install\n")
    (site / "plug_integration.py").write_text(textwrap.dedent(f"""
        def install(bus):
            def started(store, run_id):
                with open({str(tmp_path / "heard.txt")!r}, "a") as f:
                    f.write(run_id + "\\n")
            bus.subscribe("run.started", started)
    """))
    code = "import mlops_jupyter as mj\nwith mj.start_run('plugged') as r:\n    pass\nprint(r.run_id)\n"
    env = python_env()
    env["PYTHONPATH"] = f"{site}:{env.get('PYTHONPATH', '')}".rstrip(":")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=project, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "heard.txt").read_text().split() == [r.stdout.strip()]


def test_a_broken_integration_is_reported_and_the_others_load(tmp_path):
    site = tmp_path / "site"
    (site / "plug-0.1.dist-info").mkdir(parents=True)
    (site / "plug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: plug\nVersion: 0.1\n")
    (site / "plug-0.1.dist-info" / "entry_points.txt").write_text(
        "[test.group]\na_broken = no_such_module:install\nb_fine = fine_plug:install\n")
    (site / "fine_plug.py").write_text("def install(bus):\n    bus.subscribe('committed', print)\n")
    code = ("import warnings\nwarnings.simplefilter('always')\nfrom mlops_jupyter.events import EventBus\n"
            "bus = EventBus(entry_point_group='test.group')\nprint(len(bus.subscribers('committed')))\n")
    env = python_env()
    env["PYTHONPATH"] = f"{site}:{env.get('PYTHONPATH', '')}".rstrip(":")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"
    assert "integration 'a_broken' (no_such_module:install) failed to load (ModuleNotFoundError" in r.stderr


def test_entry_points_are_kept_per_environment(tmp_path):
    """The first event of a process needs the installed entry points: read from a small file kept
    per environment (named after sys.path's folders and their mtimes), not from every package."""
    env = python_env(XDG_CACHE_HOME=str(tmp_path))
    code = ("from mlops_jupyter.registry import entry_points_of, _cache_file\n"
            "print(sorted(entry_points_of('mlops_jupyter.integrations')))\nprint(_cache_file())\n")
    first = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    found, cache = first.stdout.splitlines()
    assert "('wandb', 'mlops_jupyter.integrations.wandb_mirror:install')" in found
    assert cache.startswith(str(tmp_path / "mlops-jupyter" / "entry-points-"))
    kept = json.loads(Path(cache).read_text())
    kept["mlops_jupyter.integrations"].append(["kept", "somewhere:install"])  # what the next process reads
    Path(cache).write_text(json.dumps(kept))
    second = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert "('kept', 'somewhere:install')" in second.stdout.splitlines()[0]
    other = tmp_path / "site"  # another folder on sys.path: another environment, scanned again
    other.mkdir()
    env["PYTHONPATH"] = str(other)
    third = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert "('kept'" not in third.stdout.splitlines()[0] and third.stdout.splitlines()[1] != cache
