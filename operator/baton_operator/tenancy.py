"""Per-namespace database credentials: a PostgreSQL role per tenant namespace whose
step pods see and write only the rows of their own namespace's instances.

The operator keeps one privileged URL (the owner of the tables: row-level security
does not apply to it). Each tenant role is a member of ``baton_tenant``, which may
read and write (never delete) the repository's tables; a policy on every table keeps
it to the rows whose instance has the namespace ``baton_tenant`` maps the role to —
the policies of the other tables reach the instance through the tables' own
policies. A table a later migration adds is closed to tenants until this runs again
(the chart runs it on every install and upgrade). Each role also gets a schema of its
own name (first on its search path: ``"$user"``) for the job's own tables.

Run by the chart's hook Job: ``python -m baton_operator.tenancy`` with BATON_DB_URL
(privileged; the role needs CREATEROLE) and BATON_TENANTS, a JSON list of
``{"namespace", "role", "password"}``."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from baton.repository.engine import make_engine, migrate, write_transaction
from sqlalchemy import text

GROUP = "baton_tenant"
MAPPING = "baton_tenant_role"
# table → the condition a tenant's row must meet (each reads a table under its own policy)
POLICIES = {
    "baton_job_instance": "namespace = baton_tenant_namespace()",
    "baton_job_execution": "instance_id IN (SELECT id FROM baton_job_instance)",
    "baton_job_execution_param": "execution_id IN (SELECT id FROM baton_job_execution)",
    "baton_step_execution": "job_execution_id IN (SELECT id FROM baton_job_execution)",
    "baton_skipped_item": "step_execution_id IN (SELECT id FROM baton_step_execution)",
    "baton_partition": "instance_id IN (SELECT id FROM baton_job_instance)",
}
READ_ONLY = ("baton_alembic_version", "baton_repository")
ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PASSWORD = re.compile(r"^[A-Za-z0-9]{16,128}$")
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class BadTenant(ValueError):
    pass


@dataclass(frozen=True)
class Tenant:
    namespace: str
    role: str
    password: str

    def __post_init__(self) -> None:
        """Names and passwords go into DDL, which takes no bind parameters: only
        characters that need no quoting are accepted."""
        if not NAMESPACE.match(self.namespace):
            raise BadTenant(f"namespace {self.namespace!r} is not a Kubernetes namespace name")
        if not ROLE.match(self.role) or self.role == GROUP:
            raise BadTenant(f"role {self.role!r}: lower-case letters, digits, _ (at most 63)")
        if not PASSWORD.match(self.password):
            raise BadTenant(f"password of role {self.role}: 16 to 128 letters and digits")


def tenants_of(raw: str) -> list[Tenant]:
    found = [
        Tenant(str(t["namespace"]), str(t["role"]), str(t["password"])) for t in json.loads(raw)
    ]
    for attr in ("namespace", "role"):
        values = [getattr(t, attr) for t in found]
        if len(set(values)) != len(values):
            raise BadTenant(f"two tenants share a {attr}")
    return found


def shared_statements() -> list[str]:
    """The group role, the role → namespace mapping, grants and policies (idempotent)."""
    tables = ", ".join(POLICIES)
    out = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{GROUP}') "
        f"THEN CREATE ROLE {GROUP} NOLOGIN; END IF; END $$",
        f"CREATE TABLE IF NOT EXISTS {MAPPING} "
        "(role name PRIMARY KEY, namespace varchar(253) NOT NULL)",
        f"REVOKE ALL ON {MAPPING} FROM PUBLIC",
        # SECURITY DEFINER reads the mapping the tenant may not; session_user is the
        # role that logged in (current_user is the owner inside the function)
        "CREATE OR REPLACE FUNCTION baton_tenant_namespace() RETURNS varchar LANGUAGE sql "
        "STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS "
        f"$$ SELECT namespace FROM public.{MAPPING} WHERE role = session_user $$",
        f"GRANT SELECT ON {', '.join(READ_ONLY)} TO {GROUP}",
        f"GRANT SELECT, INSERT, UPDATE ON {tables} TO {GROUP}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {GROUP}",
    ]
    for table, condition in POLICIES.items():
        out += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS tenant ON {table}",
            f"CREATE POLICY tenant ON {table} USING ({condition}) WITH CHECK ({condition})",
        ]
    return out


def tenant_statements(t: Tenant) -> list[str]:
    """The tenant's role (made or updated: its password, LOGIN), schema and mapping."""
    return [
        # (a superuser or BYPASSRLS role would see everything: refused, not altered —
        # changing those attributes takes a superuser, which the operator need not be)
        f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{t.role}' "
        "AND (rolsuper OR rolbypassrls)) THEN RAISE EXCEPTION "
        f"'role {t.role} bypasses row-level security: not a tenant role'; END IF; "
        f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{t.role}') "
        f"THEN CREATE ROLE {t.role}; END IF; END $$",
        f"ALTER ROLE {t.role} LOGIN PASSWORD '{t.password}'",
        f"GRANT {GROUP} TO {t.role}",
        # owned by the operator's role (AUTHORIZATION would need membership in the
        # tenant's role, which CREATEROLE does not give since PostgreSQL 16)
        f"CREATE SCHEMA IF NOT EXISTS {t.role}",
        f"GRANT USAGE, CREATE ON SCHEMA {t.role} TO {t.role}",
        f"INSERT INTO {MAPPING} (role, namespace) VALUES ('{t.role}', '{t.namespace}') "
        "ON CONFLICT (role) DO UPDATE SET namespace = EXCLUDED.namespace",
    ]


def retired_statements(roles: Iterable[str]) -> list[str]:
    """Roles no longer in the list: unmapped (they see nothing) and unable to log in."""
    kept = ", ".join(f"'{r}'" for r in roles) or "''"
    return [
        "DO $$ DECLARE r name; BEGIN "
        f"FOR r IN SELECT role FROM {MAPPING} WHERE role NOT IN ({kept}) LOOP "
        "EXECUTE format('ALTER ROLE %I NOLOGIN', r); END LOOP; END $$",
        f"DELETE FROM {MAPPING} WHERE role NOT IN ({kept})",
    ]


def apply(url: str, tenants: Sequence[Tenant]) -> None:
    """Bring the schema to head, then the roles and policies (one transaction,
    serialized with any other run)."""
    engine = make_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            raise BadTenant("per-namespace credentials need PostgreSQL")
        migrate(engine)
        with write_transaction(engine) as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(7234002)"))
            statements = shared_statements()
            for t in tenants:
                statements += tenant_statements(t)
            statements += retired_statements(t.role for t in tenants)
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def main() -> int:
    try:
        tenants = tenants_of(os.environ.get("BATON_TENANTS", "[]"))
        apply(os.environ["BATON_DB_URL"], tenants)
    except (BadTenant, KeyError, json.JSONDecodeError) as e:
        print(f"error: tenants: {e}", file=sys.stderr)
        return 5
    print(f"tenants: {', '.join(f'{t.namespace} ({t.role})' for t in tenants) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
