"""``python -m deepij ...``: the ``deepij`` command (the plugin starts its worker this way, with the Python
``deepij plugin install`` ran from)."""

import sys

from deepij.frontdoors.cli import main

if __name__ == "__main__":
    sys.exit(main())
