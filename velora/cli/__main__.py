"""`python -m velora.cli`: the same as the `velora` command."""

from velora.cli import main

main()
