"""The platform-neutral core: asking questions and saving threads. Imports no platform, HTTP or SQL code."""
