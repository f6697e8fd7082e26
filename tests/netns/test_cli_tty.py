"""The live views (`top`, `stats --watch`) as a person sees them: in a real
terminal, tmux's, driven with send-keys and read with capture-pane
(frontends/live.py rules 2 and 4). A private tmux server per test (its own
socket under the test's directory), killed after it."""
from __future__ import annotations

import re
import shlex
import subprocess
import threading

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from system import A, B, LAN_V4, lan_mac, send_frames, wait_for
from vnetshare.linux.procs import python_argv


class Tmux:
    """One tmux server and session running @argv in a 100x30 terminal; the
    pane stays after the command ends, so its exit status can be read."""

    def __init__(self, tmp_path, argv: list[str], width: int = 100, height: int = 30):
        self.sock = str(tmp_path / "tmux.sock")
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                  "env TERM=xterm " + " ".join(map(shlex.quote, argv)) + "; sleep 600", check=True)
        self.tmux("set-option", "-g", "remain-on-exit", "on")

    def tmux(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True, text=True, timeout=30,
                              check=check, env={"PATH": "/usr/bin:/bin", "TERM": "xterm"})

    def screen(self) -> list[str]:
        return self.tmux("capture-pane", "-p", "-t", "t").stdout.rstrip("\n").split("\n")

    def wait_screen(self, pred, timeout: float = 15.0):
        return wait_for(lambda: (lambda s: s if pred(s) else None)(self.screen()), timeout=timeout)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys, check=True)

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", "t", "-x", str(width), "-y", str(height), check=True)

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def term(tmp_path):
    made = []

    def start(*argv: str, **kw) -> Tmux:
        t = Tmux(tmp_path, list(argv), **kw)
        made.append(t)
        return t

    yield start
    for t in made:
        t.close()


HEAD = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z  2 partition\(s\), rates over [\d.]+ s; q quits$")


def _tables(screen: list[str]) -> int:
    return sum(1 for line in screen if line.startswith("PARTITION "))


@pytest.mark.parametrize("how", ["q", "C-c"])
@pytest.mark.parametrize("command", [["top", "-d", "0.3"], ["stats", "--watch", "0.3"]])
def test_the_live_view_redraws_in_place_resizes_and_quits(system, term, tmp_path, command, how):
    system.create(A[0], "--ip", f"{A[1]}/24")
    system.create(B[0], "--ip", f"{B[1]}/24")
    # something to show: pb sends to the LAN host while the view runs
    mac = system.cli_json("partition", "show", B[0])["mac"]
    frame = bytes(Ether(src=mac, dst=lan_mac()) / IP(src=B[1], dst=LAN_V4) / ICMP() / (b"x" * 500))
    stop = threading.Event()

    def send():
        while not stop.is_set():
            send_frames(B[0], [frame] * 10)
            stop.wait(0.05)

    sender = threading.Thread(target=send)
    sender.start()
    # the command's exit status is printed when it ends (the shell traps
    # SIGINT to live on after Ctrl-C; its child gets the default handling)
    argv = ["sh", "-c", "trap : INT; " + " ".join(map(shlex.quote, python_argv("vnetshare", "--socket", system.sock, *command)))
            + '; echo "EXIT=$?"']
    try:
        t = term(*argv)
        first = t.wait_screen(lambda s: s and HEAD.match(s[0]) and _tables(s) == 1)
        assert first, t.screen()
        # redrawn in place: a later screen has a new time at the top, still one table, at the same place
        later = t.wait_screen(lambda s: HEAD.match(s[0]) and s[0] != first[0])
        assert later and _tables(later) == 1 and later.index(next(l for l in later if l.startswith("PARTITION "))) \
            == first.index(next(l for l in first if l.startswith("PARTITION "))), (first, later)
        rows = {line.split()[0]: line.split() for line in later[2:] if line.strip()}
        assert set(rows) >= {A[0], B[0], "(uplink)"}, later
        assert rows[B[0]][3] != "0", later  # pb's TX FRAMES/S: what it sends shows
        # resized narrower: redrawn at once, every line within the new width, still one table
        t.resize(50, 20)
        narrow = t.wait_screen(lambda s: _tables(s) == 1 and max(map(len, s)) <= 50
                               and s[0][:4].isdigit())
        assert narrow and all(len(line) < 50 for line in narrow), narrow
        t.keys(how)
        done = t.wait_screen(lambda s: any(line.startswith("EXIT=") for line in s))
        assert done and "EXIT=0" in done, done
        assert "Traceback" not in "\n".join(done)
    finally:
        stop.set()
        sender.join()


def test_the_terminal_is_given_back(system, term):
    """After q, the terminal echoes again (cbreak mode was undone)."""
    system.create(A[0])
    cmd = " ".join(map(shlex.quote, python_argv("vnetshare", "--socket", system.sock, "top", "-d", "0.3")))
    t = term("sh", "-c", f"{cmd}; stty -a | tr ' ' '\\n' | grep -x -e echo -e -echo -e icanon -e -icanon")
    assert t.wait_screen(lambda s: s and "q quits" in s[0]), t.screen()
    t.keys("q")
    done = t.wait_screen(lambda s: "icanon" in s or "-icanon" in s)
    assert done and "echo" in done and "icanon" in done, done
