"""`python -m kbbot` is the same as the `kbbot` console script."""

from kbbot.cli import main

raise SystemExit(main())
