"""Command-line verbs, one module per stage (see grace.cli.COMMAND_MODULES)."""
