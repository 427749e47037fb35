"""Planner statistics of the claims' tables, kept fresh while the tables are young.

The hub runs its statements prepared, so PostgreSQL keeps one plan per statement and connection, made with the
statistics of that moment, until an analysis of a table it reads makes it plan again. Autovacuum analyses a table
once the rows changed since its last analysis pass `50 + 10 %` of the rows it counted then, but it looks only every
`autovacuum_naptime` (60 s by default). In a new hub that is a long time: plans made while `executions` and
`runners` held a few rows read whole tables once a backlog of thousands arrives (a sequential scan for a row found
by its key, every QUEUED execution sorted to take the first; tests/integration/test_claim_plans.py).

So the leader applies autovacuum's rule itself, every `EVERY_SECONDS`, to those two tables while the last analysis
counted fewer than `YOUNG_ROWS` rows: an analysis of such a table takes milliseconds. Beyond that, a tenth of the
table changes slowly and autovacuum's pace is enough.
"""

from __future__ import annotations

from sqlalchemy import text

from exekra.db.session import Database

TABLES = ("executions", "runners")  # what the claims read (exekra.hub.lifecycle)
EVERY_SECONDS = 5.0
YOUNG_ROWS = 100_000
_THRESHOLD_ROWS = 50  # autovacuum_analyze_threshold's default
_SCALE = 0.1  # autovacuum_analyze_scale_factor's default

_STALE = text(
    f"""
SELECT c.relname FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.oid IN ({", ".join(f"'{name}'::regclass" for name in TABLES)})
   AND c.reltuples < {YOUNG_ROWS}
   AND s.n_mod_since_analyze > {_THRESHOLD_ROWS} + {_SCALE} * greatest(c.reltuples, 0)
 ORDER BY c.relname
"""
)


async def analyse_young_tables(db: Database) -> list[str]:
    """Analyse each of `TABLES` that is young and changed enough since its last analysis (see the module's
    docstring); returns the tables analysed."""
    async with db.engine.connect() as connection:
        names = list((await connection.execute(_STALE)).scalars())
        for name in names:
            await connection.exec_driver_sql(f"ANALYZE {name}")
        await connection.commit()
    return names
