"""`python -m runner JOB_ID --data-dir DIR`: run one job under its guard."""

import sys

from runner.guard import main

sys.exit(main())
