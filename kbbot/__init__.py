"""kbbot: answers questions from a company knowledgebase in Slack, Discord and the terminal."""

__version__ = "0.1.0"
