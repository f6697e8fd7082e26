"""Every relative link in README.md and docs/*.md reaches a file of the repository, and an anchor its heading.

Rules:
1. A link is checked unless it leaves the repository on purpose (a URL
   scheme such as https: or mailto:). Links inside code (fenced blocks,
   inline code spans) are text, not links.
2. A path resolves from the directory of the page it is in, must stay
   inside the repository and must exist.
3. An anchor (#...) must name a heading of the page it points into, as
   GitHub makes heading ids: lowercased, everything but letters, digits,
   spaces, hyphens and underscores dropped, spaces made hyphens, a repeat
   given -1, -2, ...; an anchor into a file that is not Markdown is refused.
4. PENDING lists pages another branch is adding: a link to one is allowed
   while the page does not exist here; once it exists, it is checked like
   any other.
"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PENDING: set[str] = set()

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text: str):
    """(line number, line) of the text outside fenced code blocks (rule 1)."""
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield n, line


def slug(heading: str) -> str:
    """The id GitHub gives a heading (rule 3)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link's text only
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading id of a Markdown page."""
    seen: dict[str, int] = {}
    ids = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        ids.add(base if count == 0 else f"{base}-{count}")
    return ids


def links(path: Path):
    """(line number, target) of every link on a page (rule 1)."""
    for n, line in prose_lines(path.read_text(encoding="utf-8")):
        m = REF_DEF.match(line)
        if m:
            yield n, m.group(1)
            continue
        for m in INLINE_LINK.finditer(CODE_SPAN.sub("", line)):
            yield n, m.group(1)


def broken_links(pages, repo: Path = REPO, pending=frozenset()) -> list[str]:
    """One line for each link of @pages that does not resolve (rules 2-4)."""
    problems = []
    for page in pages:
        where = page.relative_to(repo)
        for n, target in links(page):
            if not target or SCHEME.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            try:
                rel = dest.relative_to(repo).as_posix()
            except ValueError:
                problems.append(f"{where}:{n}: {target}: outside the repository")
                continue
            if not dest.exists():
                if rel not in pending:
                    problems.append(f"{where}:{n}: {target}: no such file {rel}")
                continue
            if not anchor:
                continue
            if dest.suffix != ".md":
                problems.append(f"{where}:{n}: {target}: an anchor into {rel}, which is not Markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{where}:{n}: {target}: {rel} has no heading #{anchor}")
    return problems


def user_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_link_of_the_readme_and_docs_resolves():
    pages = user_pages()
    assert len(pages) > 5, pages   # the pages are there to check
    assert sum(1 for p in pages for _ in links(p)) > 50   # and links were found on them
    problems = broken_links(pages, pending=PENDING)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_checker_finds_a_missing_file_a_missing_anchor_and_passes_good_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "src.c").write_text("int x;\n")
    (tmp_path / "docs" / "a.md").write_text(
        "# Page A\n\n## The host's port (issue 2)\n\n## Twice\n\n## Twice\n\n"
        "```\n# not a heading\n[not a link](gone.md)\n```\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[good](docs/a.md) [good anchor](docs/a.md#the-hosts-port-issue-2) [second](docs/a.md#twice-1)\n"
        "[source](src.c) [self](#top) [web](https://example.org/x.md) `[code](gone.md)`\n"
        "[pending](docs/later.md)\n"
        "# Top\n"
        "[missing file](docs/b.md) [missing anchor](docs/a.md#nowhere)\n"
        "[fenced heading](docs/a.md#not-a-heading) [anchor in C](src.c#L1) [escape](../outside.md)\n"
        "[ref]: docs/c.md\n")
    problems = broken_links([readme, tmp_path / "docs" / "a.md"], repo=tmp_path,
                            pending={"docs/later.md"})
    assert problems == [
        "README.md:5: docs/b.md: no such file docs/b.md",
        "README.md:5: docs/a.md#nowhere: docs/a.md has no heading #nowhere",
        "README.md:6: docs/a.md#not-a-heading: docs/a.md has no heading #not-a-heading",
        "README.md:6: src.c#L1: an anchor into src.c, which is not Markdown",
        "README.md:6: ../outside.md: outside the repository",
        "README.md:7: docs/c.md: no such file docs/c.md",
    ]
