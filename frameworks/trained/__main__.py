"""``python -m frameworks.trained make ...``: see ``frameworks.trained``."""

import sys

from . import main

sys.exit(main())
