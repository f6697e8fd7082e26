"""python -m vnetshare: the same as the `vnetshare` command."""
import sys

from .cli import main

sys.exit(main())
