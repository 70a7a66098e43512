"""``python -m runner``: see ``runner.commands``."""

import sys

from .commands import main

sys.exit(main())
