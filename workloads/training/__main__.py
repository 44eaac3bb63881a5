"""`python -m workloads.training`: see workloads/training/train.py."""

import sys

from workloads.training.train import main

sys.exit(main())
