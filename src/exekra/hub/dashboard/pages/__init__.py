"""One module per dashboard section; `exekra.hub.dashboard.routes` puts them together."""
