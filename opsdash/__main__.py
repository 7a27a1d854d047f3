"""`python -m opsdash` is `opsdash`."""

from opsdash.cli import main

main()
