"""Runs inside Prefect's own virtual environment: the peer's flows, served by one `serve()` process.

`python prefect_serve.py LIMIT` registers the deployments `bench-noop/bench` and `bench-10ms/bench` and executes
their runs, at most LIMIT at a time. The polling interval comes from PREFECT_RUNNER_POLL_FREQUENCY.
"""

import sys
import time

from prefect import flow, serve


@flow(name="bench-noop", persist_result=False)
def noop() -> None:
    """The no-op job of the throughput workload."""


@flow(name="bench-10ms", persist_result=False)
def sleep_10ms() -> None:
    """The 10 ms job of the sequential-overhead workload."""
    time.sleep(0.010)


if __name__ == "__main__":
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    serve(
        noop.to_deployment(name="bench"),
        sleep_10ms.to_deployment(name="bench"),
        limit=limit,
        print_starting_message=False,
    )
