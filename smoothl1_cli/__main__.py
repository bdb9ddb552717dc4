"""`python -m smoothl1_cli`."""

from smoothl1_cli.cli import main

main()
