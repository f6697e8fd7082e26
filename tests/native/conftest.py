"""Fixtures for the ring tests: rings that are closed after each test.

Helpers (record building, the hostile writer, forked children) live in
ringtools.py, next to this file.
"""
import pytest

from vnetshare import CONSUMER, PRODUCER, Ring

from ringtools import RawRing


class Rings:
    """Makes rings for one test and closes every handle afterwards."""

    def __init__(self):
        self._handles = []

    def _keep(self, ring):
        self._handles.append(ring)
        return ring

    def pair(self, size):
        """(producer, consumer) on one new ring of @size bytes, one process."""
        prod = self._keep(Ring.create(PRODUCER, size))
        cons = self._keep(Ring(prod.fds, CONSUMER, size))
        return prod, cons

    def alone(self, role, size):
        """One side of a new ring, and a RawRing for playing the other side."""
        ring = self._keep(Ring.create(role, size))
        return ring, RawRing(ring.fds.memfd, size)

    def attach(self, fds, role, size=0):
        return self._keep(Ring(fds, role, size))

    def close(self):
        # consumers and attached handles first: create() handles own the fds
        for ring in reversed(self._handles):
            ring.close()


@pytest.fixture
def rings():
    r = Rings()
    yield r
    r.close()
