"""`python -m aiinfra`: the offline engine's command line."""

import sys

from aiinfra.cli import main

sys.exit(main())
