"""Kernel probes: one small test per kernel behaviour the data plane relies on.

They share the helpers of the data-plane tests one directory up; the root
and sandbox rule of tests/netns/conftest.py applies here too.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
