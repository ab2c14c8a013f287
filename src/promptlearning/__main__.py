"""`python -m promptlearning ...`: the same command line as the `promptlearning` script."""

from __future__ import annotations

import sys

from promptlearning.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
