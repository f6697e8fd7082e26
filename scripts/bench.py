#!/usr/bin/env python3
"""bench.py - measure vnetshare side by side with its peers, in one run.

    python3 scripts/bench.py [ring|net|scale|restart|failover|mcast|all] [--json] [--quick] [--reps N]
                             [--only PATTERN]... [--check] [--daemon-arg=ARG]...

ring needs no root; net and scale do: `./scripts/sandbox.sh python3
scripts/bench.py`. What each part measures, and where it lives, is told in
scripts/vnbench/__init__.py; this file only starts it.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # python3 -P, or run from elsewhere
    sys.path.insert(0, HERE)

from vnbench.main import run  # noqa: E402 - needs the path above

if __name__ == "__main__":
    sys.exit(run())
