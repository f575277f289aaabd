"""`python -m frontdesk` is the `frontdesk` command."""

from frontdesk.cli import main

main()
