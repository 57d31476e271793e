"""`python -m hunyuan_cli.ops`: the same as the `hunyuan-ops` command."""

import sys

from .main import main

sys.exit(main())
