"""The repository stands alone: every link in its Markdown and every citation of a page of
docs/ in its code resolves, to the section it names; nothing cites material outside it.

A citation is a repository path ending in ``.md`` (``docs/vhd.md``, ``xapisim/README.md``)
anywhere in a tracked text file, optionally followed by sections: ``§4.3`` (a numbered heading)
or ``§Claims and heartbeats`` (a heading containing those words).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".html", ".toml", ".txt", ".js", ".css", ".cfg", ".ini", ".sh"}
TEXT_NAMES = {"Makefile", "Procfile", "run", "redis-server", "with-postgres", "install-os-packages"}
#: What the repository must not cite: material that lives outside it. Spelled in pieces so that
#: this file does not cite it either.
OUTSIDE = [
    "reference" + "/",
    ".." + "/shared",
    "shared" + "/reference",
    "DESIGN" + ".md",
    "STYLE" + ".md",
]
PATH_MD = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)+[\w.-]+\.md)\b")
SECTION = re.compile(r"§\s*(\d+(?:\.\d+)*|[A-Z][A-Za-z]+(?: [a-z][A-Za-z]*)*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    files = []
    for name in filter(None, (raw.decode() for raw in listed)):
        path = ROOT / name
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES):
            files.append(path)
    return files


def headings(page: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in page.read_text().splitlines() if line[:1] == "#"]


def has_section(page: Path, section: str) -> bool:
    titles = headings(page)
    if section[0].isdigit():
        return any(re.match(rf"{re.escape(section)}(\.|\s|$)", title) for title in titles)
    return any(section.lower() in title.lower() for title in titles)


def slug(title: str) -> str:
    return re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", title.lower()).strip())


def citations(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line number, cited path, sections)`` for each repository path ending in .md."""
    found = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        matches = list(PATH_MD.finditer(line))
        for index, match in enumerate(matches):
            end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
            sections = [
                section
                for section in SECTION.findall(line[match.end() : end])
                if len(section) > 1 or section.isdigit()  # `§N` stands for "a number"
            ]
            found.append((number, match.group(1), sections))
    return found


def test_nothing_cites_material_outside_the_repository():
    offences = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in tracked_text_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if any(outside in line for outside in OUTSIDE)
    ]
    assert offences == [], "cite docs/<page>.md instead"


def test_every_cited_page_and_section_exists():
    broken = []
    cited = 0
    for path in tracked_text_files():
        for number, target, sections in citations(path):
            page = ROOT / target
            if not page.exists():
                page = path.parent / target  # a Markdown file naming a sibling
            where = f"{path.relative_to(ROOT)}:{number}"
            if not page.exists():
                broken.append(f"{where}: {target} does not exist")
                continue
            cited += 1
            broken += [
                f"{where}: {target} has no section {section!r}"
                for section in sections
                if not has_section(page, section)
            ]
    assert cited > 50
    assert broken == []


def test_every_markdown_link_resolves():
    broken = []
    pages = [path for path in tracked_text_files() if path.suffix == ".md"]
    for page in pages:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue  # https:, mailto:
                file_part, _, anchor = target.partition("#")
                linked = (page.parent / file_part).resolve() if file_part else page
                where = f"{page.relative_to(ROOT)}:{number}"
                if not linked.exists():
                    broken.append(f"{where}: {target} does not exist")
                elif anchor and anchor not in {slug(title) for title in headings(linked)}:
                    broken.append(f"{where}: {target} names no heading of {linked.name}")
    assert broken == []


def test_the_docs_index_lists_every_page():
    index = (ROOT / "docs" / "README.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("see docs/vhd.md §4.3 and §7.", [("docs/vhd.md", ["4.3", "7"])]),
        (
            "(docs/architecture.md §Claims and heartbeats)",
            [("docs/architecture.md", ["Claims and heartbeats"])],
        ),
        ("cites it as `docs/xapi.md §N`", [("docs/xapi.md", [])]),
        (
            "docs/xapi.md §9, xapisim/README.md",
            [("docs/xapi.md", ["9"]), ("xapisim/README.md", [])],
        ),
    ],
)
def test_citations_are_read_with_their_sections(tmp_path, line, expected):
    source = tmp_path / "module.py"
    source.write_text(f"# {line}\n")
    assert [(target, sections) for _, target, sections in citations(source)] == expected
