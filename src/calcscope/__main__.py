"""``python -m calcscope``: the command line."""

import sys

from calcscope.cli import main

sys.exit(main())
