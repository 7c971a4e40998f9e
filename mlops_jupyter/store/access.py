"""Access control on the shared PostgreSQL store, enforced by the database itself.

``mlops access grant USER viewer|editor|admin`` makes USER a login role that is a member of one of
three group roles this module creates (``mlops_viewer``, ``mlops_editor``, ``mlops_admin``):

- viewers read everything and write nothing;
- editors log runs, data versions, models and explanations, and move aliases, except the protected
  ones (``[access] protected_aliases`` in the project config, default ``production``): a row-level
  security policy on ``model_aliases`` refuses those rows to them;
- admins may do everything: move protected aliases, delete runs, collect garbage (``gc`` first
  deletes from the ``gc_gate`` table, which only admins may), grant access.

A refused write is PostgreSQL's own ``permission denied`` / row-level security error, so a client
that skips our code gets the same answer. The audit log is append-only for everyone (a trigger).
Blob deletion in the object store is governed by the object store's own credentials.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from ..exceptions import BadInput

ROLES = ("viewer", "editor", "admin")
GROUP = {r: f"mlops_{r}" for r in ROLES}
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.@-]{0,62}$")

# Tables editors may add to and update; deletions stay with admins, except what normal work
# replaces (an alias move deletes the old row; an explanation recomputed replaces its files).
EDITOR_DELETE = ("model_aliases", "explanation_files", "latest_metrics", "mirrors")


def _pg(store) -> None:
    if store.meta.dialect != "postgresql":
        raise BadInput("access control needs the shared PostgreSQL store (MLOPS_STORE_URL=postgresql+psycopg://...); "
                       "a local SQLite store is one file: its file permissions are its access control")


def check_user(name: str) -> str:
    if not isinstance(name, str) or not _USER_RE.match(name):
        raise BadInput(f"a user name is lower-case letters, digits and _ . @ - (at most 63), got {name!r:.70}")
    return name


def protected_aliases(cfg) -> list[str]:
    section = (cfg.extra or {}).get("access") or {}
    value = section.get("protected_aliases", ["production"])
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise BadInput("[access] protected_aliases must be a list of alias names")
    return value


def setup(conn, protected: list[str]) -> None:
    """Create the group roles, their grants and the alias policy (idempotent)."""
    q = conn.exec_driver_sql
    for role in GROUP.values():
        q(f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
          f"CREATE ROLE {role} NOLOGIN; END IF; END$$")
    q(f"GRANT {GROUP['viewer']} TO {GROUP['editor']}")
    q(f"GRANT {GROUP['editor']} TO {GROUP['admin']}")
    q(f"GRANT USAGE ON SCHEMA public TO {GROUP['viewer']}")
    q(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {GROUP['viewer']}")
    q(f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {GROUP['viewer']}")
    q(f"GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {GROUP['editor']}")
    q(f"REVOKE UPDATE ON audit FROM {GROUP['editor']}")
    q(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {GROUP['editor']}")
    q(f"GRANT DELETE ON {', '.join(EDITOR_DELETE)} TO {GROUP['editor']}")
    q(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {GROUP['admin']}")
    q(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {GROUP['admin']}")
    # tables later migrations create get the same grants
    q(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {GROUP['viewer']}")
    q(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON SEQUENCES TO {GROUP['viewer']}")
    q(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT INSERT, UPDATE ON TABLES TO {GROUP['editor']}")
    q(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {GROUP['editor']}")
    q(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {GROUP['admin']}")
    q(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO {GROUP['admin']}")
    q("CREATE TABLE IF NOT EXISTS gc_gate (id integer)")
    q(f"REVOKE ALL ON gc_gate FROM {GROUP['editor']}, {GROUP['viewer']}")
    q(f"GRANT SELECT ON gc_gate TO {GROUP['viewer']}")
    q(f"GRANT ALL ON gc_gate TO {GROUP['admin']}")
    # protected aliases: rows editors may not insert, update or delete
    q("CREATE TABLE IF NOT EXISTS protected_aliases (alias varchar(128) PRIMARY KEY)")
    q(f"GRANT SELECT ON protected_aliases TO {GROUP['viewer']}")
    q("DELETE FROM protected_aliases")
    for alias in protected:
        conn.execute(sa.text("INSERT INTO protected_aliases (alias) VALUES (:a)"), {"a": alias})
    q("ALTER TABLE model_aliases ENABLE ROW LEVEL SECURITY")
    q("DROP POLICY IF EXISTS mlops_read ON model_aliases")
    q("DROP POLICY IF EXISTS mlops_admin_all ON model_aliases")
    q(f"CREATE POLICY mlops_read ON model_aliases FOR SELECT TO {GROUP['viewer']} USING (true)")
    cond = "alias NOT IN (SELECT alias FROM protected_aliases)"
    for verb in ("INSERT", "UPDATE", "DELETE"):
        q(f"DROP POLICY IF EXISTS mlops_editor_{verb.lower()} ON model_aliases")
        check = f"WITH CHECK ({cond})" if verb == "INSERT" else (f"USING ({cond}) WITH CHECK ({cond})"
                                                                 if verb == "UPDATE" else f"USING ({cond})")
        q(f"CREATE POLICY mlops_editor_{verb.lower()} ON model_aliases FOR {verb} TO {GROUP['editor']} {check}")
    q(f"CREATE POLICY mlops_admin_all ON model_aliases FOR ALL TO {GROUP['admin']} USING (true) WITH CHECK (true)")


def grant(store, user: str, role: str, password: str | None = None) -> str:
    """Make *user* a viewer, editor or admin of the shared store; returns what was done."""
    _pg(store)
    check_user(user)
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    from . import audit

    before = roles(store).get(user)

    def work(conn):
        setup(conn, protected_aliases(store.settings))
        exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": user}).first()
        ident = conn.dialect.identifier_preparer.quote(user)
        if not exists:
            conn.exec_driver_sql(f"CREATE ROLE {ident} LOGIN")
        if password:  # DDL takes no parameters: a quoted literal (standard_conforming_strings is on)
            quoted = "'" + password.replace("'", "''") + "'"
            conn.exec_driver_sql(f"ALTER ROLE {ident} PASSWORD {quoted}".replace("%", "%%"))
        for other in ROLES:
            if other != role:
                conn.exec_driver_sql(f"REVOKE {GROUP[other]} FROM {ident}")
        conn.exec_driver_sql(f"GRANT {GROUP[role]} TO {ident}")
        audit.record(conn, "access.grant", user, before, role)

    store.meta.run_transaction(work)
    return f"{user}: {before or 'no access'} -> {role}"


def revoke(store, user: str) -> str:
    _pg(store)
    check_user(user)
    from . import audit

    before = roles(store).get(user)
    if before is None:
        raise BadInput(f"{user} has no access to this store")

    def work(conn):
        ident = conn.dialect.identifier_preparer.quote(user)
        for role in ROLES:
            conn.exec_driver_sql(f"REVOKE {GROUP[role]} FROM {ident}")
        audit.record(conn, "access.revoke", user, before, None)

    store.meta.run_transaction(work)
    return f"{user}: {before} -> no access"


def roles(store) -> dict[str, str]:
    """user -> its strongest mlops role."""
    _pg(store)
    rank = {GROUP[r]: i for i, r in enumerate(ROLES)}
    out: dict[str, str] = {}
    with store.meta.read() as conn:
        rows = conn.execute(sa.text(
            "SELECT m.rolname AS member, g.rolname AS grp FROM pg_auth_members a "
            "JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
            "WHERE g.rolname IN ('mlops_viewer', 'mlops_editor', 'mlops_admin') AND m.rolcanlogin")).all()
    for r in rows:
        if r.member not in out or rank[r.grp] > rank[GROUP[out[r.member]]]:
            out[r.member] = ROLES[rank[r.grp]]
    return dict(sorted(out.items()))


def gc_gate(store) -> None:
    """Only admins collect garbage: on the shared store, ask the database first."""
    if store.meta.dialect != "postgresql":
        return
    with store.meta.write() as conn:
        if conn.execute(sa.text("SELECT to_regclass('gc_gate')")).scalar() is not None:
            conn.exec_driver_sql("DELETE FROM gc_gate WHERE false")


__all__ = ["grant", "revoke", "roles", "setup", "gc_gate"]
