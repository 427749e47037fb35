"""The hub: REST API, dashboard, dispatch and maintenance."""
