"""Who did what: users on runs, data versions and alias moves; the append-only audit log.
Runs on both backends (SQLite, and PostgreSQL + S3)."""


import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

import mlops_jupyter as mj
from mlops_jupyter.store import schema as S

from .conftest import run_cli


def _model(C=1.0):
    X = pd.DataFrame({"a": [0.0, 1, 2, 3], "b": [1.0, 0, 1, 0]})
    return LogisticRegression(C=C).fit(X, [0, 0, 1, 1]), X


def test_each_write_records_its_user_and_runs_filter_by_user(store, monkeypatch, project):
    monkeypatch.setenv("MLOPS_USER", "alice")
    with mj.start_run("alice-run"):
        v = mj.data.add(pd.DataFrame({"x": [1, 2]}), name="shared")
    model, X = _model()
    mj.models.register(model, name="churn", example=X, alias="production")
    monkeypatch.delenv("MLOPS_USER")
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")  # in JupyterHub: the hub's user, whatever the OS user is
    mj.start_run("bob-run").end()
    mj.models.register(_model(2.0)[0], name="churn", example=X)
    mj.models.alias("churn@v2", "production")
    assert mj.runs(user="alice")["name"].tolist() == ["alice-run"]
    assert mj.runs(user="bob")["name"].tolist() == ["bob-run"]
    assert mj.data.get(v.ref).username == "alice" and mj.models.get("churn@v2").username == "bob"
    with store.meta.read() as conn:
        moves = conn.execute(sa.select(S.alias_events.c.username, S.alias_events.c.to_version)
                             .order_by(S.alias_events.c.id)).all()
    assert [tuple(m) for m in moves] == [("alice", 1), ("bob", 2)]
    out = run_cli("runs", "ls", "--user", "alice", cwd=project)
    assert out.returncode == 0 and "alice-run" in out.stdout and "bob-run" not in out.stdout, out.stderr


def test_the_audit_log_has_every_shared_change_and_cannot_be_rewritten(store, project, monkeypatch):
    from mlops_jupyter.store.audit import entries
    from mlops_jupyter.store.maintenance import gc

    monkeypatch.setenv("MLOPS_USER", "carol")
    model, X = _model()
    mj.models.register(model, name="churn", example=X, alias="production")
    mj.models.register(_model(3.0)[0], name="churn", example=X)
    mj.models.alias("churn@v2", "production")
    mj.models.alias("churn@v1", "staging")
    from mlops_jupyter.models.registry import Registry

    Registry(store).delete_alias("churn", "staging")
    with mj.start_run("doomed") as r:
        r.log_artifact(__file__)
    store.meta.delete_runs([r.run_id])
    assert gc(store).removed >= 1
    log = entries(store)
    got = [tuple(None if pd.isna(e[k]) else e[k] for k in ("action", "target", "from", "to"))
           for e in log.to_dict("records")]
    assert got[:4] == [("alias.move", "churn@production", None, "v1"), ("alias.move", "churn@production", "v1", "v2"),
                       ("alias.move", "churn@staging", None, "v1"), ("alias.delete", "churn@staging", "v1", None)]
    assert got[4] == ("run.delete", r.run_id, "doomed", None) and got[5][0] == "gc"
    assert set(log["user"]) == {"carol"} and log["at"].is_monotonic_increasing
    assert entries(store, action="alias")["action"].tolist() == ["alias.move"] * 3 + ["alias.delete"]
    # append-only in the database itself: neither our client nor any other can rewrite it
    for statement in (S.audit.update().values(username="mallory"), S.audit.delete()):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with store.meta.engine.begin() as conn:
                conn.execute(statement)
    assert entries(store)["user"].tolist() == ["carol"] * len(log)
    cli = run_cli("audit", "--action", "alias.move", "--last", "2", cwd=project)
    assert cli.returncode == 0 and cli.stdout.count("alias.move") == 2 and "carol" in cli.stdout, cli.stderr
