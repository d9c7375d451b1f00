"""The HTTP surface: ingest API, admin API, dashboard."""
