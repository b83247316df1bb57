"""The bot's own full-text search over the wiki: an SQLite FTS5 index, sync from any backend, extractive
answers.

It answers when there is no AI to ask: MatHub and local folders have none, and Perfect Wiki's runs out (402).
"""
