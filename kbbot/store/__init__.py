"""State behind the core's ports: in-memory/SQLite (embedded default) and Redis (many replicas)."""
