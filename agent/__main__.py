"""``python -m agent``: the ``consentry`` command line."""

from agent.cli.main import main

main()
