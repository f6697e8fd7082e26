"""clidoc.py - the command line described, from its parser: the man page,
docs/cli.md's command reference, bash and zsh completion.

    python3 -m vnetshare.frontends.clidoc man|markdown|bash|zsh

setup.py writes the man page and the completion scripts at build time (a
wheel installs them under share/; scripts/setup.sh copies them on to
/usr/local/share); docs/cli.md carries the markdown between its
"generated" markers (tests/unit/test_clidoc.py checks it is current).

Rules:
1. Everything here is read from cli.get_parser(): a new option or command
   is in the man page, the reference and the completion with no edit here.
   What the parser cannot say (exit codes, environment, files) comes from
   exits.EXITS and ENVIRONMENT below, each written once.
2. Hidden options (help=SUPPRESS) appear nowhere but the completion of
   partition names, which calls `vnetshare partition list --names` on the
   running daemon (and completes nothing when there is none).
3. A positional NAME of a command that takes an existing partition
   (NAME_COMMANDS), and --partition, complete partition names.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from .. import agent
from ..core import config, configfile
from . import exits

ENVIRONMENT = (
    ("VNETSHARE_SOCKET", "the control socket, when --socket is not given (the daemon's too: over its "
                         "config file)"),
    (configfile.ENV, f"the daemon's config file, when --config is not given (default {configfile.DEFAULT_PATH})"),
    (agent.C_AGENT_ENV, "the agent binary the daemon runs (default: the one installed with the package)"),
)
FILES = (
    (config.DEFAULT_SOCKET, "the control socket (mode 0600, root's)"),
    (config.STATE_DIR, "the partitions' records, which outlive a reboot"),
    (config.RUN_DIR, "the daemon's lock, the pins of adopted namespaces; uplinks/: one lock per NIC"),
)
NAME_COMMANDS = ("partition show", "partition set", "partition delete", "capture")
NAMES_CALL = "vnetshare partition list --names"


@dataclass
class Option:
    flags: list[str]
    metavar: str | None        # None: a flag that takes no value
    help: str
    choices: list[str] | None = None


@dataclass
class Command:
    path: list[str]            # ["partition", "create"]; [] for the top
    help: str
    usage: str
    description: str | None
    positionals: list[tuple[str, str]] = field(default_factory=list)   # (metavar, help)
    options: list[Option] = field(default_factory=list)
    subcommands: list[str] = field(default_factory=list)


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    return text % {"default": action.default, "prog": "vnetshare"} if "%(" in text else text


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command of @parser, depth first, the top one first (rule 1);
    usage lines as wide as an 80-column terminal's, wherever it runs."""
    import os

    os.environ["COLUMNS"] = "80"
    out: list[Command] = []

    def walk(p: argparse.ArgumentParser, path: list[str], help_text: str) -> None:
        cmd = Command(path, help_text, p.format_usage().replace("usage: ", "").strip(), p.description)
        out.append(cmd)
        subs: list[tuple[str, argparse.ArgumentParser, str]] = []
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                helps = {c.dest: c.help or "" for c in a._choices_actions}
                subs += [(name, sp, helps.get(name, "")) for name, sp in a.choices.items()]
            elif a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction):
                continue
            elif not a.option_strings:
                cmd.positionals.append((a.metavar or a.dest.upper(), _help(a)))
            else:
                metavar = None if a.nargs == 0 else (a.metavar or (None if a.choices else a.dest.upper()))
                if a.choices and a.nargs != 0:
                    metavar = "{" + ",".join(map(str, a.choices)) + "}"
                cmd.options.append(Option(list(a.option_strings), metavar if a.nargs != 0 else None,
                                          _help(a), [str(c) for c in a.choices] if a.choices else None))
        cmd.subcommands = [name for name, _sp, _h in subs]
        for name, sp, h in subs:
            walk(sp, path + [name], h)

    walk(parser, [], parser.description or "")
    return out


# -- man page (roff, man(7) macros) ------------------------------------------------

def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line[:1] in (".", "'") else line for line in text.split("\n"))


def man(parser: argparse.ArgumentParser, version: str) -> str:
    """The man page, section 1."""
    cmds = commands(parser)
    top = cmds[0]
    globals_ = {"--socket", "--json"}
    lines = [f'.TH VNETSHARE 1 "" "vnetshare {version}" "User Commands"',
             ".SH NAME", "vnetshare \\- " + _roff(top.description or ""),
             ".SH SYNOPSIS", ".B vnetshare", "[\\fB\\-\\-socket\\fR \\fIPATH\\fR] [\\fB\\-\\-json\\fR] "
             "\\fICOMMAND\\fR [\\fIARGS\\fR...]",
             ".SH DESCRIPTION",
             _roff("A thin client of the vnetshare daemon's control socket, and the daemon itself "
                   "(vnetshare daemon). The options --socket and --json are accepted before the command "
                   "and after it."),
             ".SH GLOBAL OPTIONS"]
    for o in top.options:
        lines += [".TP", _opt_roff(o), _roff(o.help)]
    lines.append(".SH COMMANDS")
    for c in cmds[1:]:
        if c.subcommands:  # a group: its actions follow
            continue
        lines += [".SS " + _roff("vnetshare " + " ".join(c.path)), _roff(c.help)]
        if c.description and c.description != c.help:
            lines += [".PP", _roff(c.description)]
        for meta, h in c.positionals:
            lines += [".TP", f"\\fI{_roff(meta)}\\fR", _roff(h or "")]
        for o in c.options:
            if o.flags[0] in globals_ or o.flags == ["--json"]:
                continue
            lines += [".TP", _opt_roff(o), _roff(o.help)]
    lines.append(".SH EXIT STATUS")
    for code, _short, what, errs in exits.EXITS:
        lines += [".TP", f"\\fB{code}\\fR", _roff(what + (f" ({', '.join(errs)})" if errs else ""))]
    lines += [".PP", _roff("vnetshare status exits as systemctl is-active: 0 running, 1 degraded, "
                           "3 not running, 4 unknown.")]
    lines.append(".SH ENVIRONMENT")
    for name, what in ENVIRONMENT:
        lines += [".TP", f"\\fB{name}\\fR", _roff(what)]
    lines.append(".SH FILES")
    for name, what in FILES:
        lines += [".TP", f"\\fI{_roff(name)}\\fR", _roff(what)]
    lines += [".SH SEE ALSO", "\\fBip\\fR(8), \\fBip\\-netns\\fR(8), \\fBtcpdump\\fR(8)",
              ".PP", _roff("docs/cli.md and README.md in the source tree.")]
    return "\n".join(lines) + "\n"


def _opt_roff(o: Option) -> str:
    flags = ", ".join(f"\\fB{_roff(f)}\\fR" for f in o.flags)
    return flags + (f" \\fI{_roff(o.metavar)}\\fR" if o.metavar else "")


# -- docs/cli.md's reference ---------------------------------------------------------

def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def markdown(parser: argparse.ArgumentParser) -> str:
    """The command reference of docs/cli.md (between its markers)."""
    out: list[str] = []
    for c in commands(parser)[1:]:
        if c.subcommands:
            continue
        out += [f"### vnetshare {' '.join(c.path)}", "", _md(c.help), "", "```", c.usage, "```", ""]
        rows = [(f"`{m}`", h) for m, h in c.positionals]
        rows += [(", ".join(f"`{f}`" for f in o.flags) + (f" `{o.metavar}`" if o.metavar else ""), o.help)
                 for o in c.options if not set(o.flags) & {"--socket", "--json", "-h"}]
        if rows:
            out += ["| argument | meaning |", "|---|---|"]
            out += [f"| {_md(a)} | {_md(h)} |" for a, h in rows]
            out.append("")
    return "\n".join(out)


def exit_table() -> str:
    """docs/cli.md's exit code table, from exits.EXITS."""
    rows = ["| exit | meaning | error codes (`--json`) |", "|---|---|---|"]
    rows += [f"| {code} | {_md(what)} | {', '.join(f'`{e}`' if e.isupper() else e for e in errs) or '-'} |"
             for code, _short, what, errs in exits.EXITS]
    return "\n".join(rows)


# -- completion -----------------------------------------------------------------------

def _words(parser: argparse.ArgumentParser) -> dict[str, tuple[list[str], list[str], list[str], bool]]:
    """{"partition show": (subcommands, options taking no value, options taking one,
    completes NAME)} for every command."""
    out = {}
    for c in commands(parser):
        key = " ".join(c.path)
        flags = [f for o in c.options if o.metavar is None for f in o.flags]
        valued = [f for o in c.options if o.metavar is not None for f in o.flags]
        out[key] = (c.subcommands, flags, valued, key in NAME_COMMANDS)
    return out


def bash(parser: argparse.ArgumentParser) -> str:
    """A bash completion script (bash-completion's or plain `complete`)."""
    cases = []
    for key, (subs, flags, valued, names) in _words(parser).items():
        words = " ".join(subs + flags + valued + ["--help"])
        cases.append(f'        "{key}") words="{words}"; valued="{" ".join(valued)}"; names={int(names)} ;;')
    case_body = "\n".join(cases)
    return f'''# bash completion for vnetshare; generated by: python3 -m vnetshare.frontends.clidoc bash
_vnetshare_names() {{  # the running daemon's partitions (at --socket $1 if given)
    {NAMES_CALL} ${{1:+--socket "$1"}} 2>/dev/null
}}

_vnetshare() {{
    local cur prev cmdpath="" w i words valued names sock=""
    cur=${{COMP_WORDS[COMP_CWORD]}}
    prev=${{COMP_WORDS[COMP_CWORD-1]}}
    # the command path: the words before the cursor that are commands
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        case $w in
            --socket) ((i++)); sock=${{COMP_WORDS[i]}} ;;
            -*) ;;
            *) _vnetshare_is_cmd "${{cmdpath:+$cmdpath }}$w" && cmdpath="${{cmdpath:+$cmdpath }}$w" ;;
        esac
    done
    case $cmdpath in
{case_body}
        *) words=""; valued=""; names=0 ;;
    esac
    if [[ $prev == --partition ]]; then
        COMPREPLY=($(compgen -W "$(_vnetshare_names "$sock")" -- "$cur")); return
    fi
    if [[ " $valued " == *" $prev "* ]]; then
        case $prev in
            --socket|-w|--config|--state-dir|--runtime-dir|--netns|--root|--bin-dir|--conf-dir)
                COMPREPLY=($(compgen -f -- "$cur")) ;;
        esac
        return
    fi
    if [[ $cur != -* && $names == 1 ]]; then
        COMPREPLY=($(compgen -W "$(_vnetshare_names "$sock")" -- "$cur")); return
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}

_vnetshare_is_cmd() {{
    case $1 in
        {"|".join(f'"{k}"' for k in _words(parser) if k)}) return 0 ;;
    esac
    return 1
}}

complete -F _vnetshare vnetshare
'''


def zsh(parser: argparse.ArgumentParser) -> str:
    """A zsh completion function (#compdef vnetshare)."""
    cases = []
    for key, (subs, flags, valued, names) in _words(parser).items():
        items = [f"'{s}'" for s in subs] + [f"'{f}'" for f in flags + valued + ["--help"]]
        cases.append(f'        "{key}") cands=({" ".join(items)}); valued=({" ".join(valued)}); names={int(names)} ;;')
    case_body = "\n".join(cases)
    cmds = " ".join(f'"{k}"' for k in _words(parser) if k)
    return f'''#compdef vnetshare
# zsh completion for vnetshare; generated by: python3 -m vnetshare.frontends.clidoc zsh
_vnetshare() {{
    local -a cands valued cmds parts
    local cmdpath="" w i names=0 sock="" prev=${{words[CURRENT-1]}}
    cmds=({cmds})
    for ((i = 2; i < CURRENT; i++)); do
        w=${{words[i]}}
        case $w in
            --socket) ((i++)); sock=${{words[i]}} ;;
            -*) ;;
            *) (( ${{cmds[(Ie)${{cmdpath:+$cmdpath }}$w]}} )) && cmdpath="${{cmdpath:+$cmdpath }}$w" ;;
        esac
    done
    case $cmdpath in
{case_body}
        *) cands=(); valued=() ;;
    esac
    if [[ $prev == --partition ]] || {{ [[ $PREFIX != -* && $names == 1 ]] && (( ! ${{valued[(Ie)$prev]}} )); }}; then
        parts=(${{(f)"$({NAMES_CALL} ${{sock:+--socket}} ${{sock}} 2>/dev/null)"}})
        compadd -a parts
        return
    fi
    (( ${{valued[(Ie)$prev]}} )) && {{ _files; return }}
    compadd -a cands
}}

_vnetshare "$@"
'''


MARK = "<!-- generated by python3 -m vnetshare.frontends.clidoc update docs/cli.md: {} -->"
END = "<!-- end of generated part -->"


def update(text: str, parts: dict[str, str]) -> str:
    """@text (docs/cli.md) with each generated part (between MARK.format(name)
    and END) replaced by @parts[name]."""
    for name, body in parts.items():
        start = MARK.format(name)
        i = text.index(start) + len(start)
        j = text.index(END, i)
        text = text[:i] + "\n\n" + body.strip("\n") + "\n\n" + text[j:]
    return text


def main(argv: list[str] | None = None) -> int:
    from .. import __version__
    from .cli import get_parser

    argv = sys.argv[1:] if argv is None else argv
    what = argv[0] if argv else ""
    parser = get_parser()
    render = {"man": lambda: man(parser, __version__), "markdown": lambda: markdown(parser),
              "exits": exit_table, "bash": lambda: bash(parser), "zsh": lambda: zsh(parser)}
    if what == "update" and len(argv) == 2:
        with open(argv[1]) as f:
            text = f.read()
        with open(argv[1], "w") as f:
            f.write(update(text, {"exits": exit_table(), "commands": markdown(parser)}))
        return 0
    if what not in render:
        print(f"usage: python3 -m vnetshare.frontends.clidoc {'|'.join(render)}|update FILE", file=sys.stderr)
        return 2
    sys.stdout.write(render[what]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
