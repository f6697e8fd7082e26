"""config.py: every user value is normalised or refused with a message naming it."""
import re

import pytest

from vnetshare import ConfigError
from vnetshare.core import config


@pytest.mark.parametrize("name", ["web", "a", "db-1", "x_y.z", "_tmp", "9lives", "a" * 15])
def test_partition_name_ok(name):
    assert config.partition_name(name) == name


@pytest.mark.parametrize("name", ["", "a b", "-x", ".x", "a/b", "a" * 16, "ü", "a\n", "x:y", 5, None])
def test_partition_name_bad_names_the_value(name):
    with pytest.raises(ConfigError) as e:
        config.partition_name(name)
    assert repr(name) in str(e.value)
    assert str(e.value).startswith("partition name")


def test_partition_name_message_says_the_rule():
    with pytest.raises(ConfigError, match=r"1-15 letters, digits, '-', '_' or '.', not starting with '-' or '.'"):
        config.partition_name("a b")


@pytest.mark.parametrize("name", ["eth0", "veth-lab.1", "x" * 15, "tap@1"])
def test_ifname_ok(name):
    assert config.ifname(name) == name


@pytest.mark.parametrize("name, why", [
    ("", "1-15 bytes"), ("x" * 16, "1-15 bytes"), (".", "'.' and '..'"), ("..", "'.' and '..'"),
    ("a/b", "'/'"), ("a b", "' '"), ("a:b", "':'"), ("a\tb", "'\\\\t'"), ("ééééééééé", "1-15 bytes"),
])
def test_ifname_bad(name, why):
    with pytest.raises(ConfigError, match=re.escape(repr(name))) as e:
        config.ifname(name)
    assert re.search(why, str(e.value)), str(e.value)


def test_ifname_label_is_used():
    with pytest.raises(ConfigError, match=r"^uplink 'a/b'"):
        config.ifname("a/b", "uplink")


@pytest.mark.parametrize("text, norm", [
    ("10.0.0.2/24", "10.0.0.2/24"),
    ("192.168.1.1/32", "192.168.1.1/32"),
    ("10.0.0.0/31", "10.0.0.0/31"),
    ("FD00:0::1/64", "fd00::1/64"),
    ("fe80::1/64", "fe80::1/64"),
    ("2001:db8::1/64", "2001:db8::1/64"),
    ("2001:db8::/127", "2001:db8::/127"),   # a point-to-point link (RFC 6164): no subnet-router anycast
    ("2001:db8::/128", "2001:db8::/128"),
    ("2001:db8::fdff:ffff:ffff:ff7f/64", "2001:db8::fdff:ffff:ffff:ff7f/64"),  # just below RFC 2526's
    ("2001:db8::fdff:ffff:ffff:ff80/96", "2001:db8::fdff:ffff:ffff:ff80/96"),  # not EUI-64 format
    ("255.255.255.254/31", "255.255.255.254/31"),
    ("1.0.0.1/8", "1.0.0.1/8"),
])
def test_cidr_ok(text, norm):
    assert config.cidr(text) == norm


def test_cidrs_normalises_and_refuses_duplicates():
    assert config.cidrs(["10.0.0.2/24", "fd00::0002/64"]) == ["10.0.0.2/24", "fd00::2/64"]
    with pytest.raises(ConfigError, match=r"10\.0\.0\.2 is given twice"):
        config.cidrs(["10.0.0.2/24", "10.0.0.2/16"])
    with pytest.raises(ConfigError, match="must be a list"):
        config.cidrs("10.0.0.2/24")


def test_address_owner_is_the_partition_of_the_same_vlan_with_the_same_address():
    others = [("t1", 0, ["10.50.0.11/24", "fd00::11/64"]), ("t2", 10, ["10.50.0.12/24"]),
              ("t3", 0, [])]
    assert config.address_owner(["10.50.0.11/24"], 0, others) == ("10.50.0.11/24", "t1")
    assert config.address_owner(["10.50.0.11/16"], 0, others) == ("10.50.0.11/16", "t1")  # any prefix length
    assert config.address_owner(["10.9.0.1/24", "fd00::11/120"], 0, others) == ("fd00::11/120", "t1")
    assert config.address_owner(["10.50.0.12/24"], 10, others) == ("10.50.0.12/24", "t2")
    assert config.address_owner(["10.50.0.12/24"], 0, others) is None     # another VLAN: another LAN
    assert config.address_owner(["10.50.0.11/24"], 10, others) is None
    assert config.address_owner(["10.50.0.13/24"], 0, others) is None
    assert config.address_owner([], 0, others) is None
    assert config.vlan_name(0) == "untagged" and config.vlan_name(10) == "VLAN 10"


def test_daemon_fdb_age_and_mac_conflict():
    assert config.fdb_age("2") == 2 and config.fdb_age(300) == 300
    assert config.FDB_AGE_DEFAULT == 300
    for bad in ("0", 0, "1000001", "soon", True):
        with pytest.raises(ConfigError, match=re.escape(f"FDB ageing time {bad!r}")):
            config.fdb_age(bad)
    assert [config.mac_conflict(m) for m in ("yield", "keep")] == ["yield", "keep"]
    with pytest.raises(ConfigError, match=r"MAC conflict mode 'share': must be yield or keep"):
        config.mac_conflict("share")
    assert config.DaemonConfig(uplink="x").mac_conflict == "yield"     # the safe one by default


def test_daemon_host_port_options_go_together():
    cfg = config.DaemonConfig(uplink="eth1", host_port="vnshost", take_address=True)
    assert (cfg.host_port, cfg.host_port_mac, cfg.take_address) == ("vnshost", None, True)
    assert config.DaemonConfig(uplink="eth1").host_port is None  # none unless asked
    for kw, message in (({"take_address": True}, "--take-address: needs --host-port NAME"),
                        ({"host_port_mac": "02:00:00:00:00:01"}, "--host-port-mac: needs --host-port NAME"),
                        ({"host_port": "eth1"}, "--host-port 'eth1': is the uplink"),
                        ({"host_port": "hp", "max_partitions": config.PARTITIONS_MAX_LIMIT},
                         "the host port takes one of the switch's 65536 ports")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            config.DaemonConfig(uplink="eth1", **kw)


def test_gateway():
    ips = ["10.0.0.2/24", "fd00::2/64"]
    assert config.gateway("10.0.0.1", ips) == "10.0.0.1"
    assert config.gateway("FD00::0001", ips) == "fd00::1"
    assert config.gateway("192.168.7.1", ips) == "192.168.7.1"  # outside every prefix: allowed
    with pytest.raises(ConfigError, match=r"gateway 'fd00::1': the partition has no IPv6 address"):
        config.gateway("fd00::1", ["10.0.0.2/24"])
    with pytest.raises(ConfigError, match=r"gateway '10.0.0.1': the partition has no IPv4 address"):
        config.gateway("10.0.0.1", [])
    with pytest.raises(ConfigError, match=r"gateway 'nope': not an IPv4 or IPv6 address"):
        config.gateway("nope", ips)
    with pytest.raises(ConfigError, match=r"gateway '10.0.0.2': is one of the partition's own"):
        config.gateway("10.0.0.2", ips)
    with pytest.raises(ConfigError, match=r"gateway '0.0.0.0': can't be a gateway"):
        config.gateway("0.0.0.0", ips)


@pytest.mark.parametrize("text, norm", [
    ("02:00:5E:10:00:01", "02:00:5e:10:00:01"),
    ("02-00-5e-10-00-01", "02:00:5e:10:00:01"),
    ("aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"),
])
def test_mac_ok(text, norm):
    assert config.mac(text) == norm


# Each refusal names what was refused, the value as given (repr), and why.
@pytest.mark.parametrize("check, label, text, why", [
    (config.cidr, "address", "10.0.0.2", "give a prefix length, e.g. 10.0.0.2/24"),
    (config.cidr, "address", "fd00::2", "give a prefix length, e.g. fd00::2/64"),
    (config.cidr, "address", "banana", "'banana' is not an IPv4 or IPv6 address; give ADDRESS/PREFIX, "
                                       "e.g. 192.0.2.10/24 or 2001:db8::10/64"),
    (config.cidr, "address", "10.0.0.256/24", "not an IPv4 or IPv6"),
    (config.cidr, "address", "10.0.0.2/33", "prefix length '33': must be a number from 0 to 32 for IPv4"),
    (config.cidr, "address", "fd00::2/129", "from 0 to 128 for IPv6"),
    (config.cidr, "address", "hello/24", "not an IPv4 or IPv6"),
    (config.cidr, "address", "0.0.0.0/0", "unspecified"),
    (config.cidr, "address", "::/64", "unspecified"),
    (config.cidr, "address", "127.0.0.2/8", "loopback"),
    (config.cidr, "address", "::1/128", "loopback"),
    (config.cidr, "address", "224.0.0.1/24", "multicast"),
    (config.cidr, "address", "ff02::1/64", "multicast"),
    (config.cidr, "address", "10.0.0.0/24", "network address"),
    (config.cidr, "address", "10.0.0.255/24", "broadcast address"),
    (config.cidr, "address", "255.255.255.255/32", "limited broadcast address"),
    (config.cidr, "address", "255.255.255.255/0", "limited broadcast address"),
    (config.cidr, "address", "0.1.2.3/8", "this network"),
    (config.cidr, "address", "0.0.0.0/32", "unspecified"),
    (config.cidr, "address", "::/128", "unspecified"),
    (config.cidr, "address", "127.0.0.1/32", "loopback"),
    (config.cidr, "address", "2001:db8::/64", "subnet-router anycast address of 2001:db8::/64"),
    (config.cidr, "address", "fd00:5e::/120", "subnet-router anycast"),
    (config.cidr, "address", "2001:db8::fdff:ffff:ffff:ff80/64", "reserved subnet anycast"),
    (config.cidr, "address", "2001:db8::fdff:ffff:ffff:fffe/64", "RFC 2526"),
    (config.cidr, "address", "::ffff:10.0.0.2/120", "IPv4-mapped"),
    (config.cidr, "address", "::ffff:127.0.0.1/128", "IPv4-mapped"),
    (config.cidr, "address", " 10.0.0.2/24", "not an IPv4 or IPv6"),
    (config.mac, "MAC", "01:00:5e:00:00:01", "multicast"),
    (config.mac, "MAC", "ff:ff:ff:ff:ff:ff", "multicast"),
    (config.mac, "MAC", "00:00:00:00:00:00", "all-zero"),
    (config.mac, "MAC", "02:00:5e:10:00", "six hex byte pairs"),
    (config.mac, "MAC", "02:00-5e:10:00:01", "six hex byte pairs"),
    (config.mac, "MAC", "02:00:5e:10:00:0g", "six hex byte pairs"),
    (config.mac, "MAC", "0200.5e10.0001", "six hex byte pairs"),
    (config.mac, "MAC", "02:00:5e:10:00:01\n", "six hex byte pairs"),
])
def test_bad_value_is_refused_naming_it(check, label, text, why):
    with pytest.raises(ConfigError, match=re.escape(f"{label} {text!r}")) as e:
        check(text)
    assert why in str(e.value)


def test_random_mac_is_local_unicast():
    macs = {config.random_mac() for _ in range(200)}
    assert len(macs) > 190
    for m in macs:
        assert config.mac(m) == m
        first = int(m[:2], 16)
        assert first & 0x02 and not first & 0x01


def test_mtu():
    assert config.mtu(1500) == 1500
    assert config.mtu(1280) == 1280
    assert config.mtu(9000, upper=9000) == 9000
    # the message names the MTU, the range, and why IPv6's least and not IPv4's
    with pytest.raises(ConfigError, match=r"^MTU 9001: above the range; a partition's MTU is 1280 to 9000 "
                       r"\(the uplink's MTU\): IPv6, which every partition has, needs 1280 or more "
                       r"\(IPv4 alone would take 68\)$"):
        config.mtu(9001, upper=9000)
    with pytest.raises(ConfigError, match=r"^MTU 100: below the range; a partition's MTU is 1280 to the "
                       r"uplink's MTU \(at most 65535\): IPv6"):
        config.mtu(100)
    with pytest.raises(ConfigError, match=r"MTU 1279: below the range"):
        config.mtu(1279)
    with pytest.raises(ConfigError, match=r"MTU 65536: above the range"):
        config.mtu(65536)
    with pytest.raises(ConfigError, match=r"MTU '1500': must be an integer"):
        config.mtu("1500")
    with pytest.raises(ConfigError, match=r"MTU True"):
        config.mtu(True)


def test_ring_size():
    assert config.ring_size(4 << 20) == 4 << 20
    assert config.ring_size(256 * 1024) == 256 * 1024
    for bad in (3 << 20, 128 * 1024, 1 << 31, 0, -4096, "4194304", True):
        with pytest.raises(ConfigError, match=re.escape(f"ring size {bad!r}: must be a power of two")):
            config.ring_size(bad)


def test_coalesce_usecs():
    assert config.coalesce_usecs(0) == 0
    assert config.coalesce_usecs(config.COALESCE_USECS_MAX) == config.COALESCE_USECS_MAX
    for bad in (-1, config.COALESCE_USECS_MAX + 1, "100", 1.5, True):
        with pytest.raises(ConfigError, match=re.escape(f"coalescing window {bad!r}: must be 0 to ")):
            config.coalesce_usecs(bad)


def test_tap_txqueuelen():
    assert config.tap_txqueuelen(1) == 1
    assert config.tap_txqueuelen(config.TAP_TXQUEUELEN_MAX) == config.TAP_TXQUEUELEN_MAX
    for bad in (0, -1, config.TAP_TXQUEUELEN_MAX + 1, "16", 1.5, True):
        with pytest.raises(ConfigError, match=re.escape(f"TAP transmit queue {bad!r}: must be 1 to ")):
            config.tap_txqueuelen(bad)


def test_netns_path_syntax_only(tmp_path):
    assert config.netns_path("/run/netns/web") == "/run/netns/web"
    for bad, why in (("web", "must be absolute"), ("", "not a path"), ("/run/a\0b", "not a path"),
                     (5, "must be a string")):
        with pytest.raises(ConfigError, match=re.escape(f"netns path {bad!r}: {why}")):
            config.netns_path(bad)
    # no look at the file: that is netns.pin()'s, on the descriptor it pins (tests/netns/test_netns.py)
    f = tmp_path / "plain"
    f.write_text("")
    assert config.netns_path(str(f)) == str(f)


# --- the tenant's policy (issue 8) ------------------------------------------------

@pytest.mark.parametrize("rates, bursts, expected", [
    (["200mbit"], [], config.Rate(200_000_000, 2_007_040, 0, 0)),   # 10 ms, whole KiB
    (["10mbit"], [], config.Rate(10_000_000, 64 * 1024 * 8, 0, 0)),  # at least a GSO frame
    (["1.5gbit", "10kpps"], ["1mb", "100p"], config.Rate(1_500_000_000, 8 * 1024 * 1024, 10_000, 100)),
    (["20kpps"], [], config.Rate(0, 0, 20_000, 200)),
    (["100pps"], [], config.Rate(0, 0, 100, config.BURST_PKTS_MIN)),
    (["none"], [], config.Rate()),
])
def test_rate_limit(rates, bursts, expected):
    assert config.rate_limit(rates, bursts) == expected


@pytest.mark.parametrize("rates, bursts", [(["9" * 400 + "mbit"], []), (["1mbit"], ["9" * 400 + "kb"])])
def test_rate_limit_of_hundreds_of_digits_is_too_large_not_an_overflow(rates, bursts):
    with pytest.raises(ConfigError, match="too large"):
        config.rate_limit(rates, bursts)


def test_rate_describe_reads_back_as_the_user_wrote_it():
    assert config.rate_limit(["200mbit"]).describe() == "200mbit burst 245kb"
    assert config.rate_limit(["1gbit", "10kpps"], ["1mb", "100p"]).describe() == \
        "1gbit burst 1mb, 10kpps burst 100p"
    assert config.Rate().describe() == "none"


@pytest.mark.parametrize("value, expected", [("none", 0), ("0", 0), ("2000", 2000), ("2kpps", 2000),
                                             ("500pps", 500), (0, 0), ("-1", None), ("5mbit", None),
                                             ("9" * 400, None)])
def test_storm_limit(value, expected):
    if expected is None:
        with pytest.raises(ConfigError, match=re.escape(f"storm limit {value!r}")):
            config.storm_limit(value)
    else:
        assert config.storm_limit(value) == expected


@pytest.mark.parametrize("value, expected", [("10", 10), ("4094", 4094), ("none", 0), (7, 7)])
def test_vlan(value, expected):
    assert config.vlan(value) == expected


@pytest.mark.parametrize("value", ["0", "4095", "-1", "ten", 5000, True])
def test_vlan_bad(value):
    with pytest.raises(ConfigError, match=re.escape(f"VLAN {value!r}")):
        config.vlan(value)


def test_receive_bursts_default_to_100_ms_transmit_to_10():
    # policing drops whole GSO frames: TCP under --rx-limit needs room (test_tenant.py)
    assert config.rate_limit(["100mbit"], direction="rx").bits_burst == 10_002_432  # 100 ms, whole KiB
    assert config.rate_limit(["100mbit"], direction="tx").bits_burst == 1_007_616   # 10 ms
    assert config.rate_limit(["10kpps"], direction="rx").pkts_burst == 1000


@pytest.mark.parametrize("value, expected", [
    ("1879048192-1879113727", (1879048192, 1879113727)),
    ("60578-61183", (60578, 61183)),  # what systemd leaves unused below nobody
    ("5000-5000", (5000, 5000)),
    ("1-65533", (1, 65533)),
    ("65536-2147483647", (65536, 2147483647)),
])
def test_agent_uids(value, expected):
    assert config.agent_uids(value) == expected


def test_agent_uids_default_is_what_systemd_leaves_unused_above_its_container_ranges():
    first, last = config.AGENT_UIDS_DEFAULT
    assert config.agent_uids(f"{first}-{last}") == (first, last)
    assert first > 1879048191 and last < 2**31  # systemd's container ranges end at 1879048191
    assert last - first + 1 >= config.PARTITIONS_MAX_LIMIT  # one each for the most partitions a daemon serves


@pytest.mark.parametrize("value, why", [
    ("1000", "not FIRST-LAST"),
    ("a-b", "not FIRST-LAST"),
    ("-5-10", "not FIRST-LAST"),
    ("10-", "not FIRST-LAST"),
    (" 10-20", "not FIRST-LAST"),
    ("0-100", "at least 1"),
    ("200-100", "not above LAST"),
    ("2147483000-2147483648", "above 2147483647"),
    ("65000-66000", "holds 65534 (nobody)"),
    ("65535-65535", "holds 65535"),
    (1000, "must be a string"),
])
def test_agent_uids_bad_one_line_names_the_value(value, why):
    with pytest.raises(ConfigError) as e:
        config.agent_uids(value)
    assert f"agent uid range {value!r}" in str(e.value) and why in str(e.value)
    assert "\n" not in str(e.value)


def test_records_persist_the_rest_is_in_the_runtime_dir():
    """Issue 21: by default the records are in /var/lib/vnetshare, the lock
    and the pins in /run/vnetshare; a state dir given alone keeps all (a
    lab's, a test's, a deployment's /run/vnetshare from before the split)."""
    d = config.DaemonConfig(uplink="x")
    assert (d.state_path, d.lock_path, d.pin_dir, d.socket) == (
        "/var/lib/vnetshare/state.json", "/run/vnetshare/daemon.lock", "/run/vnetshare/netns",
        "/run/vnetshare/control.sock")
    assert d.old_state_path == "/run/vnetshare/state.json"  # state.migrate() looks there
    one = config.DaemonConfig(uplink="x", state_dir="/tmp/lab")
    assert (one.runtime_dir, one.lock_path, one.pin_dir, one.old_state_path) == (
        "/tmp/lab", "/tmp/lab/daemon.lock", "/tmp/lab/netns", None)
    apart = config.DaemonConfig(uplink="x", state_dir="/var/lib/vns/eth1", runtime_dir="/run/vns/eth1")
    assert (apart.state_path, apart.lock_path) == ("/var/lib/vns/eth1/state.json", "/run/vns/eth1/daemon.lock")


def test_unreachable_gateway_names_the_first_gateway_off_every_subnet():
    ips = ["10.1.0.5/24", "fd00::5/64"]
    assert config.unreachable_gateway(ips, "10.1.0.1", ["10.9.0.0/16 via 10.1.0.1", "::/0 via fe80::1"]) is None
    assert config.unreachable_gateway(ips, "10.2.0.1", []) == "gateway 10.2.0.1"
    assert config.unreachable_gateway(ips, None, ["10.9.0.0/16 via 192.0.2.1"]) == \
        "route '10.9.0.0/16 via 192.0.2.1'"
    # an on-link route makes its prefix reachable
    assert config.unreachable_gateway(ips, "172.16.0.1", ["172.16.0.0/12"]) is None
    assert config.unreachable_gateway([], "fd00::1", []) == "gateway fd00::1"


def test_label_change_sets_or_removes_as_kubectl():
    assert config.label_change("team=web") == ("team", "web")
    assert config.label_change("team-") == ("team", None)
    assert config.label_change("a-b=c") == ("a-b", "c")
    for bad, why in (("team", "not KEY=VALUE"), ("-", "a key is"), ("=x", "a key is")):
        with pytest.raises(ConfigError, match=why):
            config.label_change(bad)
