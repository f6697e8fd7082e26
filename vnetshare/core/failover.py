"""failover.py - which uplink the switch serves, the primary or the backup (pure).

`vnetshare daemon --uplink A --backup-uplink B`: the switch holds a socket
on each (switch.py rule 8) and serves one, the active one. decide() says
which, from what the daemon sees of both (hosting.py asks it on every link
notification of either, and when a hold time it asked for runs out); it
does no I/O, so the whole table is unit tested.

Rules:
1. An uplink is usable when the daemon serves its device (a socket on
   it) and the device is up with a carrier (IFF_UP and IFF_RUNNING).
2. The active uplink stays while it is usable, but for failback (rule 4).
3. The active one not usable (or none active): the other if it is
   usable, a failover (a failback when the other is the primary and the
   backup failed: the primary is where the daemon belongs); neither:
   none is active, frames for the wire are dropped (no_uplink) until one
   is usable again, and then it is taken at once (the primary if both).
4. Failback, while the backup is active and the primary usable:
   "always" at once; "hold" once the primary has been usable for the
   hold time without a break (bonding's updelay: a flapping link is not
   taken back); "never" not (only when the backup fails, rule 3).
"""
from __future__ import annotations

from dataclasses import dataclass

PRIMARY, BACKUP = "primary", "backup"
ROLES = (PRIMARY, BACKUP)


@dataclass(frozen=True)
class Decision:
    """What decide() says: @target the role to serve (None: neither), and,
    when it differs from the active one, @kind ("failover" or "failback")
    and @reason; @recheck: the monotonic time to ask again (a hold runs),
    or None."""

    target: str | None
    kind: str | None = None
    reason: str | None = None
    recheck: float | None = None


def decide(active: str | None, usable: dict[str, bool], primary_since: float | None, now: float,
           failback: str = "hold", hold: float = 5.0) -> Decision:
    """The uplink to serve (rules 1-4). @active: the role served now (None:
    neither); @usable: {role: bool} (rule 1); @primary_since: the monotonic
    time the primary last became usable (None: it is not); @now: the
    monotonic time; @failback: config.FAILBACK_MODES; @hold: seconds."""
    other = {PRIMARY: BACKUP, BACKUP: PRIMARY}
    if active is not None and usable.get(active):
        if active == BACKUP and usable.get(PRIMARY) and failback != "never":
            up_for = now - (primary_since if primary_since is not None else now)
            if failback == "always" or up_for >= hold:
                return Decision(PRIMARY, "failback",
                                "primary up again" + (f" for {hold:g} s" if failback == "hold" else ""))
            return Decision(BACKUP, recheck=now + hold - up_for)
        return Decision(active)
    if active is None:
        for role in ROLES:
            if usable.get(role):
                return Decision(role, "failback" if role == PRIMARY else "failover", f"{role} up")
        return Decision(None)
    to = other[active]
    if usable.get(to):
        return Decision(to, "failback" if to == PRIMARY else "failover", f"{active} down")
    return Decision(None, "failover", "both down")
