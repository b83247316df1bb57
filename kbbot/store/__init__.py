"""Shared state: answer cache, rate limiter, dedupe, saved-thread map (memory/SQLite/Redis)."""
