"""The operators' web dashboard: server-rendered pages, htmx for the live parts, Chart.js for charts."""
