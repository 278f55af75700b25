"""``python -m hrnet_explorer.cli …``: the ``hrnet-explorer`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
