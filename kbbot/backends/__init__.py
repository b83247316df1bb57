"""Knowledgebase backends: Perfect Wiki, MatHub, and a local folder of Markdown pages."""
