"""build_ffi.py - cffi builder (out-of-line API mode) for vnetshare.dataplane._native.

The declarations cffi sees are the headers' own: each header in HEADERS
marks its API with lines

    /* cdef: begin */
    ... declarations, exactly as C sees them ...
    /* cdef: end */

(as many such sections as it needs), and cdef() gets those sections, in
HEADERS order, read by cdef_from() with four rewrites:

1. `#define NAME VALUE`: an integer literal VALUE (123u, 0x1ull) stays, so
   lib.NAME has it and cffi checks it against the compiler on first use
   (tests/native/test_contract.py touches them all); any other VALUE, an
   expression, becomes `#define NAME ...` (cffi takes it from the compiler).
   A function-like macro, or any other directive, is an error: leave it
   outside the sections.
2. A line that ends with `/* cdef: opaque */` (a struct member cffi cannot
   parse, __int128) becomes `...;`: cffi takes that struct's layout from
   the compiler, and Python cannot touch that member.
3. `static inline` on a prototype is dropped: a header-only function is
   declared once before its body (tbucket.h), and cffi wraps it.
4. Comments go (after rule 2 has read its marker).

An array length in a section is an integer literal, a literal #define or
an enum value declared before it (cffi computes it).

To add a declaration: write it in its header, inside a section (or open a
new one around it); a new header also goes into HEADERS (and its .c into
SOURCES). Nothing else is edited here. `python3 native/build_ffi.py
--cdef` prints what cffi gets. set_source() includes the real headers, so
the compiler checks every declaration against the code too; everything
under native/ is compiled with -Wall -Wextra -Werror.
"""
import re
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = ["ring.c", "ring_bench.c", "tap.c", "pump.c", "uplink.c", "guard.c", "fdb.c", "mcast.c", "cbpf.c", "switch.c",
           "switch_mac.c", "switch_capture.c", "switch_ctl.c"]
HEADERS = ["ring_abi.h", "ring.h", "ring_bench.h", "tap.h", "coalesce.h", "dql.h", "pump.h", "uplink.h",
           "tbucket.h", "fdb.h", "mcast.h", "guard.h", "cbpf.h", "switch.h"]

_SECTION = re.compile(r"^/\* cdef: begin \*/\n(.*?)^/\* cdef: end \*/$", re.S | re.M)
_OPAQUE = re.compile(r"^[^\n]*/\* cdef: opaque \*/[ \t]*$", re.M)
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_DEFINE = re.compile(r"^#define[ \t]+(\w+)([ \t(].*)?$")
_INT = re.compile(r"-?(0x[0-9a-f]+|[0-9]+)[ul]*", re.I)  # what cffi's cdef takes as a value


def cdef_from(name: str, text: str) -> str:
    """The cdef of header @name (its @text): its sections, rewritten."""
    sections = _SECTION.findall(text)
    if not sections:
        raise ValueError(f"native/{name}: no /* cdef: begin */ ... /* cdef: end */ section")
    out = [f"/* {name} */"]
    for body in sections:
        body = _OPAQUE.sub("...;", body)
        body = _COMMENT.sub("", body)
        for line in body.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                m = _DEFINE.match(stripped)
                if m is None or (m.group(2) or "").startswith("("):
                    raise ValueError(f"native/{name}: cffi takes only #define NAME VALUE in a cdef "
                                     f"section, not {stripped!r}")
                value = (m.group(2) or "").strip()
                line = f"#define {m.group(1)} {value if _INT.fullmatch(value) else '...'}"
            elif stripped.startswith("static inline "):
                line = stripped[len("static inline "):]
            out.append(line)
    return "\n".join(out) + "\n"


CDEF = "".join(cdef_from(h, (HERE / h).read_text()) for h in HEADERS)

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "vnetshare.dataplane._native",
    "".join(f'#include "{h}"\n' for h in HEADERS),
    sources=[f"native/{name}" for name in SOURCES],
    include_dirs=["native"],
    extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    if sys.argv[1:] == ["--cdef"]:
        sys.stdout.write(CDEF)
    else:
        ffibuilder.compile(tmpdir=str(HERE.parent / "build"), verbose=True)
