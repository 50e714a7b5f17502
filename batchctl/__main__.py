"""`python -m batchctl ...` runs the CLI."""

import sys

from batchctl.cli import main

if __name__ == "__main__":
    sys.exit(main())
