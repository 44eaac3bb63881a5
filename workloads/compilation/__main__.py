"""`python -m workloads.compilation`: see workloads/compilation/compile.py."""

import sys

from workloads.compilation.compile import main

sys.exit(main())
