"""lifecycle.py - a partition's life as a transition table, sans I/O.

The manager (manager.py) does the work; this module only says which state
a partition is in and what may happen next, so the rules are tested
without namespaces, processes or a switch.

    creating --created--> running --agent_died--> restarting
        |                  ^   |                     |  |
   create_failed           |   +--delete--+   agent_started  gave_up
        v                  +--------------|----------+      v
      gone <--deleted-- deleting <--delete+---------------- failed

Rules:
1. Only the pairs in TRANSITIONS are legal; anything else is a
   LifecycleError naming the state and the event (a manager bug, never a
   user's mistake).
2. An agent that dies is restarted unless it died more than
   AGENT_RESTART_MAX times within AGENT_RESTART_WINDOW seconds
   (RestartPolicy); then the partition is failed and stays so until
   deleted. Its namespace, TAP and addresses stay: only the agent is gone.
3. delete is legal from every live state; "gone" is final.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .errors import VnetshareError

AGENT_RESTART_WINDOW = 30.0  # seconds: agent deaths counted over this long ...
AGENT_RESTART_MAX = 5        # ... this many restarts mark the agent failed


class State(str, Enum):
    CREATING = "creating"
    RUNNING = "running"
    RESTARTING = "agent restarting"
    FAILED = "failed"
    DELETING = "deleting"
    GONE = "gone"


class Event(str, Enum):
    CREATED = "created"
    CREATE_FAILED = "create_failed"
    AGENT_DIED = "agent_died"
    AGENT_STARTED = "agent_started"
    GAVE_UP = "gave_up"
    DELETE = "delete"
    DELETED = "deleted"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.CREATING, Event.CREATED): State.RUNNING,
    (State.CREATING, Event.CREATE_FAILED): State.GONE,
    (State.RUNNING, Event.AGENT_DIED): State.RESTARTING,
    (State.RESTARTING, Event.AGENT_STARTED): State.RUNNING,
    (State.RESTARTING, Event.GAVE_UP): State.FAILED,
    (State.RUNNING, Event.DELETE): State.DELETING,
    (State.RESTARTING, Event.DELETE): State.DELETING,
    (State.FAILED, Event.DELETE): State.DELETING,
    (State.DELETING, Event.DELETED): State.GONE,
}


class LifecycleError(VnetshareError):
    """An event that is not legal in the partition's state (rule 1)."""


def next_state(state: State, event: Event) -> State:
    """The state after @event in @state; LifecycleError if illegal."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise LifecycleError(f"event {event.value!r} in state {state.value!r}") from None


@dataclass
class RestartPolicy:
    """Rule 2: may a dead agent be restarted? Times are monotonic seconds."""

    window: float = AGENT_RESTART_WINDOW
    limit: int = AGENT_RESTART_MAX
    deaths: list[float] = field(default_factory=list)

    def agent_died(self, now: float) -> bool:
        """Record a death at @now; True if the agent may be restarted."""
        self.deaths = [t for t in self.deaths if now - t < self.window] + [now]
        return len(self.deaths) <= self.limit


@dataclass
class Lifecycle:
    """One partition's state, moved only through the table."""

    state: State = State.CREATING
    reason: str | None = None  # why it failed, for `partition show`
    policy: RestartPolicy = field(default_factory=RestartPolicy)

    def fire(self, event: Event, reason: str | None = None) -> State:
        self.state = next_state(self.state, event)
        if reason is not None:
            self.reason = reason
        return self.state

    def agent_died(self, now: float) -> bool:
        """An agent ended: to RESTARTING, then True if a new one may start,
        or to FAILED (with the reason) and False."""
        self.fire(Event.AGENT_DIED)
        if self.policy.agent_died(now):
            return True
        n = len(self.policy.deaths)
        self.fire(Event.GAVE_UP, f"agent died {n} times in {self.policy.window:.0f} s; not restarted")
        return False
