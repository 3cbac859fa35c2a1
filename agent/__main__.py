"""``python -m agent`` runs the ``consentry`` command line."""

from agent.cli.main import main

main()
