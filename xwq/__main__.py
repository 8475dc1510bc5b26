"""``python -m xwq ...``: the same as the ``xwq`` command."""

import sys

from xwq.cli import main

sys.exit(main())
