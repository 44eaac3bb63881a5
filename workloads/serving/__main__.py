"""`python -m workloads.serving`: see `server.main`."""

import sys

from .server import main

sys.exit(main())
