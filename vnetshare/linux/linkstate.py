"""linkstate.py - a link's state and its changes, through NETLINK_ROUTE.

The event watcher's eyes on the uplink (events.Watcher, hosting.py): one
NETLINK_ROUTE socket kept open for an RTM_GETLINK a look, and one joined
to the kernel's link notifications (RTMGRP_LINK, as `ip monitor link`)
that an asyncio loop reads (monitor_fd()) to know when to look.

Rules:
1. A link is known by its name, whatever its index: one deleted and made
   again, or renamed to the name, is the link looked at.
2. A missing link is down, operstate "absent"; a lost notification
   (ENOBUFS) counts as a change.
"""
from __future__ import annotations

import socket
import struct

# rtnetlink, for the uplink's state: one socket, one RTM_GETLINK a look
_RTM_GETLINK = 18
_NLMSG_ERROR = 2
_NLM_F_REQUEST = 1
_IFF_UP = 0x1
_IFF_RUNNING = 0x40  # the kernel's "operationally up" (netif_oper_up)
_RTMGRP_LINK = 0x1
_IFLA_IFNAME = 3


def _link_name(data: bytes, off: int, end: int) -> str | None:
    """IFLA_IFNAME among the attributes of a link message, from @off to @end."""
    while off + 4 <= end:
        n, kind = struct.unpack_from("=HH", data, off)
        if n < 4:
            return None
        if kind & 0x3FFF == _IFLA_IFNAME:
            return data[off + 4:off + n].split(b"\0", 1)[0].decode(errors="replace")
        off += (n + 3) & ~3
    return None


class LinkState:
    """The uplink's state through one NETLINK_ROUTE socket kept open (in
    the daemon's namespace, the uplink's): one RTM_GETLINK per look,
    parsed by pyroute2 (0.2 ms; pyroute2's IPRoute per look costs 2 ms).
    A missing link is down, operstate "absent". A second socket, joined to
    the kernel's link notifications (RTMGRP_LINK, as `ip monitor link`),
    says when to look (monitor_fd(), changed()). The uplink is the link of
    that name, whatever its index: one deleted and made again, or renamed
    to it, is looked at (hosting.py rebinds to it)."""

    def __init__(self, ifname: str):
        self.ifname = ifname
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   socket.NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._sock.settimeout(1.0)
        self._mon = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
                                  socket.NETLINK_ROUTE)
        self._mon.bind((0, _RTMGRP_LINK))
        self._seq = 0
        self._index: int | None = None

    def monitor_fd(self) -> int:
        """Readable when the kernel announced a link change."""
        return self._mon.fileno()

    def changed(self) -> bool:
        """Read every pending link notification: did one concern the
        uplink (its index, or a link of its name: re-created, renamed to
        it; or its index is not known: maybe)? An overrun (ENOBUFS) counts
        as yes."""
        ours = False
        while True:
            try:
                data = self._mon.recv(65536)
            except BlockingIOError:
                return ours
            except OSError:  # ENOBUFS: notifications were lost
                ours = True
                continue
            off = 0
            while off + 24 <= len(data):
                length = struct.unpack_from("=L", data, off)[0]
                index = struct.unpack_from("=i", data, off + 20)[0]  # ifinfomsg.ifi_index
                ours = (ours or self._index is None or index == self._index
                        or _link_name(data, off + 32, min(off + length, len(data))) == self.ifname)
                if length < 16:
                    break
                off += (length + 3) & ~3

    def look(self) -> dict:
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        for _ in range(2):  # the index it had may be gone, and a new link have the name
            if self._index is None:
                try:
                    self._index = socket.if_nametoindex(self.ifname)
                except OSError:
                    return {"ifname": self.ifname, "up": False, "operstate": "absent"}
            self._seq += 1
            body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, self._index, 0, 0)
            self._sock.send(struct.pack("=LHHLL", 16 + len(body), _RTM_GETLINK, _NLM_F_REQUEST,
                                        self._seq, 0) + body)
            while True:
                data = self._sock.recv(65536)
                _length, kind, _flags, seq, _pid = struct.unpack_from("=LHHLL", data)
                if seq == self._seq:
                    break
            if kind != _NLMSG_ERROR:
                msg = ifinfmsg(data)
                msg.decode()
                if msg.get_attr("IFLA_IFNAME") == self.ifname:
                    break
            self._index = None  # gone, renamed, or renumbered: by name again
        else:
            return {"ifname": self.ifname, "up": False, "operstate": "absent"}
        flags = msg["flags"]
        return {"ifname": self.ifname, "up": bool(flags & _IFF_UP and flags & _IFF_RUNNING),
                "operstate": msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN"}

    def close(self) -> None:
        self._sock.close()
        self._mon.close()
