"""python -m vnetshare: the same as the `vnetshare` command."""
import sys

from .frontends.cli import main

sys.exit(main())
