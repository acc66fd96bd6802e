"""``python -m store serve ...`` is the same as ``fjord serve ...``."""

import sys

from .cli import main

sys.exit(main())
