"""`python -m hrnet_explorer …` is the `hrnet-explorer` command, so `torchrun -m hrnet_explorer analyze …` works."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
