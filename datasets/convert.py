"""`python -m datasets.convert ntu|msr|folder SRC OUT.pkl`: the converters' command (datasets/sources/convert.py)."""

import sys

from datasets.sources.convert import main

if __name__ == "__main__":
    sys.exit(main())
