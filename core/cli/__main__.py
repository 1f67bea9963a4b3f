"""`python -m core.cli`, the same as `medlens`."""

import sys

from core.cli import main

sys.exit(main())
