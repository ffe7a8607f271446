"""``python -m almanac``: the command line."""

import sys

from almanac.cli import main

sys.exit(main())
