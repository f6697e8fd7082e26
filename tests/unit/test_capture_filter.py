"""`vnetshare capture NAME FILTER`: the filter compiled by tcpdump in the
client, its shape checked (config.bpf_program()) before the daemon's C
validator sees it. No daemon, no C build."""
import shutil

import pytest

from vnetshare.core import config, protocol
from vnetshare.core.errors import ConfigError
from vnetshare.frontends import capture, cli
from vnetshare.frontends.exits import Failure

needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is a test dependency")


@needs_tcpdump
def test_an_expression_is_compiled_to_the_program_tcpdump_prints():
    prog = capture.compile_filter("icmp")
    assert prog == [[40, 0, 0, 12], [21, 0, 3, 2048], [48, 0, 0, 23], [21, 0, 1, 1],
                    [6, 0, 0, 262144], [6, 0, 0, 0]]
    assert config.bpf_program(prog)[0] == (40, 0, 0, 12)


@needs_tcpdump
def test_a_bad_expression_is_tcpdumps_message_naming_it():
    with pytest.raises(ConfigError) as e:
        capture.compile_filter("tcp port eighty")
    assert str(e.value).startswith("capture filter 'tcp port eighty': ") and "eighty" in str(e.value)


def test_no_tcpdump_says_what_to_install():
    with pytest.raises(Failure, match="apt-get install tcpdump"):
        capture.compile_filter("icmp", tcpdump="no-such-tcpdump-here")


def test_the_filter_is_the_remaining_words_joined():
    args = cli.get_parser().parse_args(["capture", "web", "-c", "3", "tcp", "port", "80"])
    assert args.filter == ["tcp", "port", "80"] and args.count == 3
    assert cli.get_parser().parse_args(["capture", "web"]).filter == []


@pytest.mark.parametrize("prog, needle", [
    ([], "0 instructions"),
    ([[6, 0, 0, 1]] * 4097, "4097 instructions"),
    ("icmp", "str instructions"),
    ([[6, 0, 0]], "instruction 0 [6, 0, 0]"),
    ([[6, 0, 0, 1], [6, 256, 0, 1]], "instruction 1 [6, 256, 0, 1]"),
    ([[6, 0, 0, -1]], "instruction 0 [6, 0, 0, -1]"),
    ([[6, 0, 0, True]], "instruction 0"),
])
def test_a_program_of_the_wrong_shape_is_refused_naming_it(prog, needle):
    with pytest.raises(ConfigError, match="capture filter") as e:
        config.bpf_program(prog)
    assert needle in str(e.value), str(e.value)
    if isinstance(prog, list):  # the daemon's request check says the same (a string is not a list)
        with pytest.raises(protocol.ProtocolError, match="capture filter") as e:
            protocol.validate_request({"op": "capture", "name": "web", "filter": prog})
        assert e.value.code == "EINVAL" and needle in str(e.value)


def test_a_request_with_a_filter_passes_the_check():
    _op, args = protocol.validate_request({"op": "capture", "name": "web", "filter": [[6, 0, 0, 1]],
                                           "filter_text": "x"})
    assert args["filter"] == [(6, 0, 0, 1)] and args["filter_text"] == "x"
    assert protocol.validate_request({"op": "capture", "name": "web"})[1]["filter"] is None


@pytest.mark.parametrize("text", ["icmp\nforged log line", "x" * 1025])
def test_the_expression_the_daemon_logs_is_one_bounded_line(text):
    with pytest.raises(protocol.ProtocolError, match="filter_text") as e:
        protocol.validate_request({"op": "capture", "name": "web", "filter": [[6, 0, 0, 1]], "filter_text": text})
    assert e.value.code == "EINVAL"
