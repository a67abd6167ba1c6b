"""The book (docs/book) runs: every ```python block of every chapter, and every link resolves.

Each chapter's blocks run in order in one fresh namespace, so a chapter may build on its own
earlier snippets but never on another chapter's. The snippets assert their formulas against
the library's code, so a change that breaks a derivation breaks this test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import cnn
from cnn import backend

BOOK = Path(__file__).resolve().parent.parent / "docs" / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]-*.md"))
PAGES = [BOOK / "README.md", *CHAPTERS]

CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def python_blocks(path: Path) -> list[str]:
    """The chapter's python blocks in order, those inside blockquotes (the seed's boxes) too."""
    text = re.sub(r"^> ?", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return CODE_BLOCK.findall(text)


def test_the_book_has_its_eleven_chapters_and_an_index():
    assert len(CHAPTERS) == 11, [p.name for p in CHAPTERS]
    index = (BOOK / "README.md").read_text(encoding="utf-8")
    for chapter in CHAPTERS:
        assert f"]({chapter.name})" in index, f"the index does not link {chapter.name}"
    readme = (BOOK.parent.parent / "README.md").read_text(encoding="utf-8")
    assert "](docs/book/README.md)" in readme, "README.md does not link the book"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_code_runs(chapter, monkeypatch):
    blocks = python_blocks(chapter)
    assert blocks, f"{chapter.name} has no python block"
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(BOOK)
    namespace = {"__name__": f"book_{chapter.stem.replace('-', '_')}"}
    # The chapters set the float type and the seed; both are put back afterwards.
    with backend.floatx_scope(cnn.floatx()), backend.using_rng(backend.rng()):
        for number, block in enumerate(blocks, start=1):
            code = compile(block, f"{chapter.name} (python block {number})", "exec")
            exec(code, namespace)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_links_to_repository_files_resolve(page):
    text = re.sub(r"^> ?", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    links = [target for target in LINK.findall(text)
             if not re.match(r"[a-z]+:", target) and not target.startswith("#")]
    assert links, f"{page.name} links to no file"
    for target in links:
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name} links to {target}, which does not exist"


def test_links_into_cnn_name_functions_that_exist():
    """A link to a module of cnn names what it points at, [`Class.method`, `function`](file.py),
    and each named function or class is defined in that file."""
    for chapter in CHAPTERS:
        text = chapter.read_text(encoding="utf-8")
        for label, target in re.findall(r"\[([^\]]*)\]\(([^)\s]*cnn/[^)\s]+\.py)\)", text):
            names = [n for n in re.findall(r"`([^`]+)`", label) if not n.startswith("cnn.")]
            assert names, f"{chapter.name}: the link to {target} names no function"
            source = (chapter.parent / target).resolve().read_text(encoding="utf-8")
            for name in names:
                short = name.split(".")[-1]
                assert re.search(rf"^\s*(def|class) {short}\b", source, re.MULTILINE), (
                    f"{chapter.name}: {name} is not defined in {target}")


def test_make_figures_draws_every_image_the_book_shows(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", BOOK / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = {Path(p).name for p in module.main(tmp_path)}
    shown = set()
    for page in PAGES:
        shown |= {Path(t).name for t in re.findall(r"\]\((images/[^)\s]+\.png)\)",
                                                    page.read_text(encoding="utf-8"))}
    assert shown and shown <= written, f"not drawn by make_figures.py: {shown - written}"
    for name in shown:
        assert (BOOK / "images" / name).is_file(), f"images/{name} is not committed"
        assert os.path.getsize(tmp_path / name) > 1000
