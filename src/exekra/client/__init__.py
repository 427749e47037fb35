"""The Python SDK of the Exekra hub's REST API (used by the `exekra` command line).

```python
from exekra.client import ExekraClient

with ExekraClient("http://127.0.0.1:4545", token="exk_…") as hub:
    workflow = hub.find_workflow("invoices")
    created = hub.run(workflow.id, {"month": "2025-01"})
    execution = hub.wait(created.execution.id, timeout=600)
    print(execution.status, execution.outputs)
```

`AsyncExekraClient` has the same methods as coroutines. Errors are `exekra.client.errors` classes.
"""

from exekra.client.aio import AsyncExekraClient
from exekra.client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    ExekraClientError,
    Forbidden,
    HubUnreachable,
    NotAuthenticated,
    NotFound,
    NotReady,
    PayloadTooLarge,
    Problem,
    RateLimited,
    ServerError,
    ValidationFailed,
)
from exekra.client.sync import ExekraClient

__all__ = [
    "ApiError",
    "AsyncExekraClient",
    "BadRequest",
    "Conflict",
    "ExekraClient",
    "ExekraClientError",
    "Forbidden",
    "HubUnreachable",
    "NotAuthenticated",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "Problem",
    "RateLimited",
    "ServerError",
    "ValidationFailed",
]
