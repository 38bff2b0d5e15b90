"""The README and the docs pages: short enough, every relative link resolving, no diary.

Pure text checks (no services): the README stays a page or two for a newcomer, a link in
README.md or docs/*.md points at a file the repository has, and no page holds notes a reader
cannot resolve (a reference to the session that wrote it, or a time of day naming when
something was run).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
MAX_README_LINES = 200

# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCED_CODE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.IGNORECASE)
# A development diary: a reference to the writing session, and a time of day naming when
# something ran. A schedule's time says UTC ("at 00:30 UTC") and is no diary.
DIARY = [
    re.compile(r"\bthis\s+session\b", re.IGNORECASE),
    re.compile(r"\b(?:at|since|before|after)\s+\d{1,2}:\d{2}\b(?!\s*UTC)", re.IGNORECASE),
    re.compile(r"\bthe\s+\d{1,2}:\d{2}\s+(?:run|session|measurement)", re.IGNORECASE),
]


def _prose(text: str) -> str:
    """The text outside code: what a reader sees as links and sentences."""
    return INLINE_CODE.sub("", FENCED_CODE.sub("", text))


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(page.read_text())) if not EXTERNAL.match(t)]


def test_the_docs_pages_exist():
    names = {page.name for page in PAGES}
    expected = {"layers", "operations", "security", "performance", "emulator", "development"}
    assert {f"{name}.md" for name in expected | {"deploying", "api-contract"}} <= names


def test_the_readme_is_at_most_200_lines():
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; at most {MAX_README_LINES}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_relative_link_resolves_to_a_file_in_the_repository(page):
    broken = []
    for target in relative_links(page):
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(REPO) or not path.exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)} links to missing files: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_no_page_holds_a_session_diary(page):
    found = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(page.read_text().splitlines(), start=1)
        for pattern in DIARY
        if pattern.search(line)
    ]
    assert not found, f"{page.relative_to(REPO)}: " + "; ".join(found)


def test_the_link_and_diary_patterns_catch_what_they_are_for():
    text = (
        "See [layers](docs/layers.md#bronze), ![a chart](docs/images/x.png), [web](https://x.org)."
    )
    assert LINK.findall(text) == ["docs/layers.md#bronze", "docs/images/x.png", "https://x.org"]
    assert not LINK.findall(_prose("`[2024-01-01...2024-01-31](x)`"))
    # Put together here, so that this file holds none of the phrases it looks for.
    diary = ["at " + "16:33 the run", "the " + "15:40 run", "before this" + " session"]
    assert all(any(p.search(line) for p in DIARY) for line in diary)
    fine = ["every day at 00:30 UTC", "from 09:15 to 09:45", "the 23:30-00:00 period"]
    assert not any(p.search(line) for p in DIARY for line in fine)
