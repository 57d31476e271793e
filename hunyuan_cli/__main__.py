"""`python -m hunyuan_cli`: the same as the `hunyuan-video` command."""

import sys

from .main import main

sys.exit(main())
