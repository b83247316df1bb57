"""What the bot has seen, summarized for the people who keep the wiki: gaps, usage, the AI quota."""
