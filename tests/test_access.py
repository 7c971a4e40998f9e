"""Access control on the shared PostgreSQL store, with real roles: what each role may do is refused
or allowed by PostgreSQL itself (grants, a row-level security policy, an append-only trigger)."""

import os
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from .conftest import PY, python_env, run_cli

pytestmark = pytest.mark.slow

SCRIPT = """
import sys, mlops_jupyter as mj, pandas as pd
from sklearn.linear_model import LogisticRegression
from mlops_jupyter.exceptions import PermissionDenied
X = pd.DataFrame({'a': [0.0, 1, 2, 3]})
def attempt(what, fn):
    try:
        fn()
        print(what, 'ok')
    except PermissionDenied as e:
        assert '\\n' not in str(e), e
        print(what, 'denied')
def log():
    with mj.start_run('by-' + sys.argv[1]) as r:
        r.log_metric('acc', 1.0)
def data():
    mj.data.add(X.assign(who=sys.argv[1]), name='d-' + sys.argv[1])
def register():
    mj.models.register(LogisticRegression().fit(X, [0, 0, 1, 1]), name='m', example=X)
attempt('read', lambda: mj.runs())
attempt('log', log)
attempt('data', data)
attempt('register', register)
attempt('staging', lambda: mj.models.alias('m@v1', 'staging'))
attempt('production', lambda: mj.models.alias('m@v1', 'production'))
from mlops_jupyter.store import open_store
from mlops_jupyter.store.maintenance import gc
attempt('delete', lambda: open_store().meta.delete_runs([mj.get_run('seed').run_id]))
attempt('gc', lambda: gc(open_store()))
"""


def test_viewer_editor_admin_are_enforced_by_postgres(project, postgres_url, tmp_path):
    import mlops_jupyter as mj

    admin_env = python_env(MLOPS_STORE_URL=postgres_url, MLOPS_ARTIFACTS_URL=str(tmp_path / "blobs"))
    seed = subprocess.run([PY, "-c", "import mlops_jupyter as mj, pandas as pd\n"
                           "from sklearn.linear_model import LogisticRegression\n"
                           "mj.start_run('seed').end(); X = pd.DataFrame({'a': [0.0, 1, 2, 3]})\n"
                           "mj.models.register(LogisticRegression().fit(X, [0, 0, 1, 1]), name='m', example=X)"],
                          cwd=project,
                          env=admin_env, capture_output=True, text=True, timeout=120)
    assert seed.returncode == 0, seed.stderr
    tag = uuid.uuid4().hex[:6]
    users = {f"v_{tag}": "viewer", f"e_{tag}": "editor", f"a_{tag}": "admin"}
    url = sa.engine.make_url(postgres_url)
    try:
        for user, role in users.items():
            g = run_cli("access", "grant", user, role, "--password-env", "PW", cwd=project,
                        env=dict(admin_env, PW=f"pw-{user}"))
            assert g.returncode == 0 and f"-> {role}" in g.stdout, g.stderr
        ls = run_cli("access", "ls", cwd=project, env=admin_env)
        for user, role in users.items():
            assert f"{user}  {role}" in " ".join(ls.stdout.split()).replace(f"{user} {role}", f"{user}  {role}")
        results = {}
        for user in users:  # each as its own database user, as a teammate's notebook would connect
            as_user = url.set(username=user, password=f"pw-{user}").render_as_string(hide_password=False)
            env = dict(admin_env, MLOPS_STORE_URL=as_user, MLOPS_USER=user)
            r = subprocess.run([PY, "-c", SCRIPT, user], cwd=project, env=env, capture_output=True, text=True,
                               timeout=300)
            assert r.returncode == 0, r.stderr[-2000:]
            results[users[user]] = dict(line.split() for line in r.stdout.splitlines())
        assert results["viewer"] == {"read": "ok", "log": "denied", "data": "denied", "register": "denied",
                                     "staging": "denied", "production": "denied", "delete": "denied", "gc": "denied"}
        assert results["editor"] == {"read": "ok", "log": "ok", "data": "ok", "register": "ok", "staging": "ok",
                                     "production": "denied", "delete": "denied", "gc": "denied"}
        assert results["admin"] == {"read": "ok", "log": "ok", "data": "ok", "register": "ok", "staging": "ok",
                                    "production": "ok", "delete": "ok", "gc": "ok"}
        # the database, not our client, said no: the same insert straight through the driver fails
        as_editor = url.set(username=f"e_{tag}", password=f"pw-e_{tag}").render_as_string(hide_password=False)
        eng = sa.create_engine(as_editor)
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            with eng.begin() as conn:
                conn.exec_driver_sql("UPDATE model_aliases SET version = 2 WHERE alias = 'production'")
                conn.exec_driver_sql("INSERT INTO model_aliases (name, alias, version) VALUES ('m', 'production', 2)")
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            with eng.begin() as conn:
                conn.exec_driver_sql("DELETE FROM runs")
        eng.dispose()
        # a schema upgrade is the owner's: a viewer on an older store is told so in one line, and can
        # read again once the owner has opened it
        owner = sa.create_engine(postgres_url)
        with owner.begin() as conn:
            conn.exec_driver_sql("UPDATE schema_version SET version = 9")
        as_viewer = url.set(username=f"v_{tag}", password=f"pw-v_{tag}").render_as_string(hide_password=False)
        ls_as = lambda u: run_cli("runs", "ls", cwd=project, env=dict(admin_env, MLOPS_STORE_URL=u))  # noqa: E731
        r = ls_as(as_viewer)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "upgraded to v12 by the role that owns its tables" in r.stderr and "permission denied" in r.stderr
        assert ls_as(postgres_url).returncode == 0 and ls_as(as_viewer).returncode == 0
        with owner.connect() as conn:
            assert conn.exec_driver_sql("SELECT version FROM schema_version").scalar() == 12
        owner.dispose()
        # every grant is in the audit log
        os.environ["MLOPS_STORE_URL"] = postgres_url
        try:
            from mlops_jupyter.store import close_store, open_store
            from mlops_jupyter.store.audit import entries

            close_store()
            log = entries(open_store(), action="access")
            assert sorted(zip(log["target"], log["to"])) == sorted(users.items())
            moves = entries(open_store(), action="alias.move")
            assert moves.loc[moves["target"] == "m@production", "user"].tolist() == [f"a_{tag}"]
            assert mj.models.get("m@production").version == 1
        finally:
            del os.environ["MLOPS_STORE_URL"]
            close_store()
    finally:
        admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for user in users:
                conn.exec_driver_sql(f'DROP OWNED BY "{user}"') if conn.execute(sa.text(
                    "SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": user}).first() else None
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{user}"')
        admin.dispose()


def test_access_needs_the_shared_store(project):
    r = run_cli("access", "grant", "bob", "editor", cwd=project)
    assert r.returncode == 2 and "needs the shared PostgreSQL store" in r.stderr and r.stderr.count("\n") == 1
    bad = run_cli("access", "grant", "Bob; DROP", "editor", cwd=project)
    assert bad.returncode == 2



def test_the_store_password_is_never_written_or_stored(project, postgres_url, ip, monkeypatch, capsys):
    """`%mlops init --store URL` with a password: config.toml holds the URL without it (this process
    keeps it in PGPASSWORD, so the session goes on; a new process finds it the same way); cell
    sources, the captured environment, params and tags hold the password redacted."""
    import mlops_jupyter as mj
    from mlops_jupyter.store import close_store, open_store

    from .conftest import run_cell

    role, password = f"pw_{uuid.uuid4().hex[:6]}", f"Pw-{uuid.uuid4().hex}"  # a password no other text holds
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    postgres_url = sa.engine.make_url(postgres_url).set(username=role, password=password).render_as_string(False)
    monkeypatch.setenv("PGPASSWORD", "")
    monkeypatch.delenv("PGPASSWORD")  # (recorded, so what init sets is undone after the test)
    monkeypatch.setenv("MLOPS_PROXY", f"http://me:{password}@proxy.invalid:3128")  # any variable, any URL
    run_cell(ip, "import mlops_jupyter as mj")
    r = run_cell(ip, f"%mlops init --store {postgres_url}")
    assert r.success, r.error_in_exec
    out = capsys.readouterr().out
    assert "not written to .mlops/config.toml" in out and password not in out
    config = (project / ".mlops" / "config.toml").read_text()
    assert "postgresql+psycopg://" in config and password not in config
    assert os.environ.get("PGPASSWORD") == password  # the session goes on through libpq's variable
    r = run_cell(ip, f"%%mlops track with-url --param db={postgres_url} --tag db={postgres_url}\n"
                     f"url = '{postgres_url}'\nmj.log(acc=1.0)")
    assert r.success, r.error_in_exec
    run = mj.get_run("with-url")
    assert open_store().meta.dialect == "postgresql"
    stored = [run.params["db"], run.tags["db"], *(c["source"] for c in run.cells()),
              run.artifact_bytes("_mlops/environment.json").decode()]
    assert not any(password in s for s in stored), stored
    assert any("***REDACTED***@" in s for s in stored[:2]) and "MLOPS_PROXY" in stored[-1]
    # a new process: the URL from config.toml, the password from PGPASSWORD (as ~/.pgpass would give it)
    close_store()
    env = python_env(PGPASSWORD=password)
    env.pop("MLOPS_STORE_URL", None)
    got = subprocess.run([PY, "-c", "import mlops_jupyter as mj; print(mj.get_run('with-url').run_id)"], cwd=project,
                         env=env, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0 and got.stdout.strip() == run.run_id, got.stderr
    env.pop("PGPASSWORD")
    got = run_cli("runs", "ls", cwd=project, env=env)
    assert got.returncode != 0 and "password" in got.stderr and len(got.stderr.strip().splitlines()) == 1
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP OWNED BY {role}; DROP ROLE {role}")
    admin.dispose()
