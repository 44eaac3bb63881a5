"""`python -m aiinfra`: the offline engine's command line.

One command is one short-lived process: the cyclic garbage collector is switched off for its whole life, since
importing the provider SDKs and one synth create hundreds of thousands of objects and no garbage worth
collecting before exit (about a fifth of the import time otherwise; peak memory stays a few hundred MB).
"""

import gc
import sys

gc.disable()

from aiinfra.cli import main  # noqa: E402

sys.exit(main())
