"""The ``consentry`` command line: one click group whose subcommands load only when called."""
