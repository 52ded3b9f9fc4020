"""``python -m calcscope``: the command line."""

import sys

from calcscope.apps.cli import main

sys.exit(main())
