"""configfile.py: every `vnetshare daemon` flag is a key of the config file,
checked by the flag's own converter; flags win over the file, the file over
the defaults; a mistake is one line naming the file, the key and the rule."""
import argparse
import dataclasses
import tomllib

import pytest

from vnetshare import ConfigError
from vnetshare.core import config, configfile
from vnetshare.frontends.cli import daemon_settings, get_parser

SETTINGS = daemon_settings()


def from_file(text: str, tmp_path, argv=("daemon",), env=None):
    """(DaemonConfig, sources) of `vnetshare ARGV --config FILE` with @text in FILE, as cmd_daemon builds it."""
    path = tmp_path / "vnetshare.toml"
    path.write_text(text)
    args = get_parser(only_daemon=True).parse_args([*argv, "--config", str(path)])
    opts = configfile.options(args.parser, args.socket_option)
    name, required = configfile.which(args.config, env or {})
    got = configfile.settings(configfile.load(name, required), name, opts, args.uplink)
    values, sources = configfile.merge(args, opts, got)
    return config.DaemonConfig(**values), sources


def error_of(text: str, tmp_path, argv=("daemon", "--uplink", "eth1")) -> str:
    with pytest.raises(ConfigError) as e:
        from_file(text, tmp_path, argv)
    return str(e.value)


# -- the keys are the daemon's options ---------------------------------------------

def test_every_daemon_option_is_a_key_named_as_its_flag():
    parser = get_parser(only_daemon=True).parse_args(["daemon"]).parser
    flags = {s[2:] for a in parser._actions for s in a.option_strings[:1] if s.startswith("--")}
    assert set(SETTINGS) == (flags - {"help", "config", "print-config", "json"}) | {"socket"}
    for key in ("uplink", "storm-limit", "metrics", "agent-uids", "coalesce-usecs", "direct-share",
                "mac-conflict", "fdb-age", "max-partitions", "state-dir", "runtime-dir", "socket"):
        assert key in SETTINGS


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_every_option_says_not_given_by_default_and_lands_in_daemonconfig(key):
    """Rule 1: a daemon option added with a default of its own would make
    the file lose to it; one whose dest is no DaemonConfig field would
    never reach the daemon."""
    action = SETTINGS[key]
    assert action.default in (None, False), (
        f"--{key}: its parser default {action.default!r} would win over the config file: "
        "leave it None and put the default in config.DaemonConfig")
    fields = {f.name for f in dataclasses.fields(config.DaemonConfig)}
    assert action.dest in fields, f"--{key}: config.DaemonConfig has no field {action.dest!r}"


EXAMPLES = {"metrics": '"127.0.0.1:9477"', "host-port": '"vnshost0"', "backup-uplink": '"eth2"', "host-port-mac": '"02:00:5e:10:00:01"'}
NEEDS = {"host-port-mac": ("host-port", "vnshost0"), "take-address": ("host-port", "vnshost0")}


def from_flags(argv) -> config.DaemonConfig:
    args = get_parser(only_daemon=True).parse_args(argv)
    opts = configfile.options(args.parser, args.socket_option)
    values, _ = configfile.merge(args, opts, configfile.Settings(None))
    return config.DaemonConfig(**values)


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_every_key_takes_what_its_flag_takes(key, tmp_path):
    """Each setting's default (or, for one off by default, an example),
    written in the file as --print-config writes it, gives the daemon what
    the flag given the same text gives. An option with no example and
    nothing by default is still a key: its converter checks its value."""
    action = SETTINGS[key]
    literal = configfile._literal(getattr(config.DaemonConfig(uplink="eth1"), action.dest))
    if literal is None:
        literal = "true" if action.nargs == 0 else EXAMPLES.get(key)
    base = [] if key == "uplink" else ["--uplink", "eth1"]
    if key in NEEDS:
        base += [f"--{NEEDS[key][0]}", NEEDS[key][1]]
    if literal is None:
        with pytest.raises(ConfigError, match=f": {key}: "):  # a value error, not "no such setting"
            from_file(f'{key} = "?"\n', tmp_path, ("daemon", *base))
        return
    text = tomllib.loads(f"v = {literal}")["v"]
    cfg, sources = from_file(f"{key} = {literal}\n", tmp_path, ("daemon", *base))
    if key == "socket":
        argv = ["--socket", text, "daemon", *base]
    elif action.nargs == 0:
        argv = ["daemon", *base, *([f"--{key}"] if text else [])]
    else:
        argv = ["daemon", *base, f"--{key}", str(text)]
    assert cfg == from_flags(argv)
    if literal != "false":
        assert sources[action.dest] == str(tmp_path / "vnetshare.toml")


# -- precedence --------------------------------------------------------------------

FILE = """\
uplink = "eth1"
storm-limit = 500
metrics = 9477
agent-uids = "100000-100999"

[uplinks.eth2]
storm-limit = "2kpps"
offloads = "emulate"
socket = "/run/vnetshare/eth2.sock"
"""


def test_file_over_defaults(tmp_path):
    cfg, sources = from_file(FILE, tmp_path)
    assert (cfg.uplink, cfg.storm_limit, cfg.metrics, cfg.agent_uids) == \
        ("eth1", 500, ("127.0.0.1", 9477), (100000, 100999))
    assert cfg.offloads == "mirror" and cfg.socket == config.DEFAULT_SOCKET  # eth2's table is not eth1's
    assert "offloads" not in sources and sources["storm_limit"] == str(tmp_path / "vnetshare.toml")


def test_flags_over_the_file_and_the_uplinks_table_over_the_top(tmp_path):
    cfg, sources = from_file(FILE, tmp_path, ("daemon", "--uplink", "eth2", "--metrics", "9500"))
    assert cfg.uplink == "eth2" and sources["uplink"] == "--uplink"
    assert cfg.metrics == ("127.0.0.1", 9500) and sources["metrics"] == "--metrics"
    assert cfg.storm_limit == 2000 and sources["storm_limit"].endswith("[uplinks.eth2]")
    assert (cfg.offloads, cfg.socket) == ("emulate", "/run/vnetshare/eth2.sock")
    assert cfg.agent_uids == (100000, 100999)  # the top level still counts


def test_a_flag_given_its_default_value_still_wins(tmp_path):
    cfg, _ = from_file(FILE.replace("[uplinks.eth2]", "offloads = \"emulate\"\n[uplinks.eth2]"), tmp_path,
                       ("daemon", "--offloads", "mirror"))
    assert cfg.offloads == "mirror"


def test_print_config_output_is_a_config_file_that_gives_the_same_settings(tmp_path):
    cfg, sources = from_file(FILE, tmp_path, ("daemon", "--uplink", "eth2", "--fdb-age", "60"))
    printed = configfile.render(cfg, SETTINGS, sources)
    assert "fdb-age = 60  # --fdb-age" in printed and "storm-limit = 2000  # " in printed
    again, _ = from_file(printed, tmp_path)
    assert again == cfg


@pytest.mark.parametrize("env, arg, want", [
    ({}, None, (configfile.DEFAULT_PATH, False)),       # the default file: read if it exists
    ({}, "/etc/x.toml", ("/etc/x.toml", True)),         # named: must exist
    ({configfile.ENV: "/e.toml"}, None, ("/e.toml", True)),
    ({configfile.ENV: "/e.toml"}, "/a.toml", ("/a.toml", True)),
    ({}, "none", (None, False)),
    ({configfile.ENV: "none"}, None, (None, False)),
])
def test_which_file(env, arg, want):
    assert configfile.which(arg, env) == want


def test_a_missing_default_file_is_no_file_a_missing_named_one_an_error(tmp_path):
    assert configfile.load(str(tmp_path / "nope.toml"), required=False) == {}
    with pytest.raises(ConfigError, match=r"config file .*nope.toml: does not exist"):
        configfile.load(str(tmp_path / "nope.toml"), required=True)


# -- mistakes: one line, the file, the key, the rule -------------------------------

@pytest.mark.parametrize("text, needle", [
    ("storm_limit = 5", "storm_limit: no such setting (did you mean storm-limit?)"),
    ("stormlimit = 5", "stormlimit: no such setting (did you mean storm-limit?)"),
    ("colour = 5", "colour: no such setting; the settings are the options of `vnetshare daemon`"),
    ('storm-limit = "lots"', "storm-limit: storm limit 'lots': not a number with a unit"),
    ('offloads = "fast"', "offloads: 'fast': must be one of mirror, emulate"),
    ("ring-size = 3", "ring-size: ring size 3: must be a power of two from 262144 to 1073741824"),
    ('agent-uids = "5"', "agent-uids: agent uid range '5': not FIRST-LAST"),
    ("metrics = true", "metrics: true: must be a string or a number"),
    ("fdb-age = [1, 2]", "fdb-age: [1, 2]: one value, not a list"),
    ("fdb-age = 0", "fdb-age: FDB ageing time '0': must be 1 to 1000000 seconds"),
    ("mac-conflict = { a = 1 }", "mac-conflict: a table: must be a string or a number"),
    ('[uplinks.eth2]\nuplink = "eth3"', "[uplinks.eth2] uplink: not allowed in an [uplinks.IFACE] table"),
    ('[uplinks.eth2]\nstorm-limit = -1', "[uplinks.eth2] storm-limit: storm limit '-1'"),
    ('[uplinks."a/b"]\nfdb-age = 5', "[uplinks.a/b]: interface name 'a/b': must not contain '/'"),
    ("uplinks = 5", "uplinks: must be tables, [uplinks.IFACE], one for each uplink"),
    ('uplink = "a b"', "uplink: interface name 'a b': must not contain ' '"),
    ("storm-limit = ", "not TOML: Invalid value (at line 1, column 15)"),
])
def test_a_mistake_is_one_line_naming_file_key_and_rule(tmp_path, text, needle):
    message = error_of(text + "\n", tmp_path)
    assert "\n" not in message
    assert str(tmp_path / "vnetshare.toml") in message
    assert needle in message, message


def test_another_uplinks_table_is_checked_too(tmp_path):
    """Rule 2: a typo in eth2's table stops eth1's daemon as well."""
    assert "[uplinks.eth2] fdb-age" in error_of("[uplinks.eth2]\nfdb-age = 0\n", tmp_path)


# -- kinds of options other helpers may add ---------------------------------------

def _parser():
    p = argparse.ArgumentParser()
    p.add_argument("--take-address", action="store_true")
    p.add_argument("--follow", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--extra-port", action="append", default=None, type=int)
    p.add_argument("--name", default=None)
    return configfile.options(p)


@pytest.mark.parametrize("text, dest, want", [
    ("take-address = true", "take_address", True),
    ("take-address = false", "take_address", None),  # not given
    ("follow = false", "follow", False),
    ("extra-port = [1, 2]", "extra_port", [1, 2]),
    ("extra-port = 3", "extra_port", [3]),
    ('name = "x"', "name", "x"),
])
def test_flags_without_a_value_and_repeatable_ones(text, dest, want):
    got = configfile.settings(tomllib.loads(text), "f.toml", _parser(), None)
    assert got.values == ({} if want is None else {dest: want})


@pytest.mark.parametrize("text, needle", [
    ('take-address = "yes"', "take-address: 'yes': must be true or false"),
    ('extra-port = ["x"]', "extra-port: invalid literal for int"),
])
def test_flags_without_a_value_and_repeatable_ones_refuse_what_their_flag_would(text, needle):
    with pytest.raises(ConfigError, match=needle):
        configfile.settings(tomllib.loads(text), "f.toml", _parser(), None)
