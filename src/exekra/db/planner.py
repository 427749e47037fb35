"""Planner statistics of the claims' tables, kept up with a new hub's growth.

The hub runs its statements prepared, so PostgreSQL keeps one plan per statement and connection, made with the
statistics of that moment, until an analysis of a table it reads makes it plan again. Autovacuum analyses a table
once enough of its rows have changed, but it looks only every `autovacuum_naptime` (60 s by default). In a new hub
that is a long time: plans made while `executions` and `runners` held a few rows read whole tables once a backlog
of thousands arrives (every QUEUED execution sorted to take the first, a sequential scan for a row found by its key;
tests/integration/test_claim_plans.py).

So the leader analyses either table, every `EVERY_SECONDS`, when it holds more than `MIN_ROWS` rows and more than
`GROWN` times what its last analysis (or vacuum) counted, while that count is under `YOUNG_ROWS` (a new hub's
tables; an analysis samples at most 30,000 rows). Growth, not churn: the signs of life rewrite every runner's row
each second, which autovacuum's rule (rows changed) would count, and an analysis makes every hub connection plan
again.

Only tables whose owner role the hub's database user has are analysed (`ANALYZE` skips the others with a warning):
the user that ran `exekra db upgrade` owns them. Each analysis commits by itself and skips a table that another
session has locked (`SKIP_LOCKED`): it never waits behind a migration, a truncation or autovacuum's own work.
"""

from __future__ import annotations

from sqlalchemy import text

from exekra.db.session import Database

TABLES = ("executions", "runners")  # what the claims read (exekra.hub.lifecycle)
EVERY_SECONDS = 5.0
MIN_ROWS = 50
GROWN = 1.5
YOUNG_ROWS = 100_000

_GROWN_TABLES = text(
    f"""
SELECT c.relname FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.oid IN ({", ".join(f"to_regclass('{name}')" for name in TABLES)})
   AND pg_has_role(c.relowner, 'USAGE')
   AND c.reltuples < :young
   AND s.n_live_tup > greatest({MIN_ROWS}, {GROWN} * c.reltuples)
 ORDER BY c.relname
"""
)


async def analyse_grown_tables(db: Database, young: int = YOUNG_ROWS) -> list[str]:
    """Analyse each of `TABLES` that has grown since its last analysis counted fewer than `young` rows (see the
    module's docstring); returns the tables found grown, analysed unless another session held one locked (it is
    left for the next look)."""
    async with db.engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        names = list((await connection.execute(_GROWN_TABLES, {"young": young})).scalars())
        for name in names:
            await connection.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {name}")
    return names
