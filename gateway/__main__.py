"""``python -m gateway``: the same as the ``dit-gateway`` console script."""

from gateway.cli import main

main()
