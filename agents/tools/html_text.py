"""A web page's readable text: headings and paragraphs, without scripts, styles or navigation."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Their content is never text a reader sees (or, for nav, wants).
_SKIPPED = {"script", "style", "nav", "noscript", "template", "svg", "iframe", "button", "select"}
# Each starts a new line.
_BLOCKS = {
    "p", "div", "br", "li", "tr", "section", "article", "header", "footer", "blockquote", "pre",
    "table", "ul", "ol", "dl", "dt", "dd", "main", "aside", "figure", "figcaption", "form", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "td", "th",
}  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.title = ""
        self._line: list[str] = []
        self._skipping: list[str] = []  # open skipped elements, innermost last
        self._in_title = False

    def _break(self, prefix: str = "") -> None:
        text = _SPACES.sub(" ", "".join(self._line)).strip()
        if text:
            self.lines.append(text)
        self._line = [prefix]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIPPED:
            self._skipping.append(tag)
        if self._skipping:
            return
        if tag in _HEADINGS:
            self._break("#" * _HEADINGS[tag] + " ")
        elif tag == "li":
            self._break("- ")
        elif tag in _BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._skipping:
            while self._skipping and self._skipping.pop() != tag:
                pass
            return
        if not self._skipping and tag in _BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self._line.append(data.replace("\n", " "))

    def close(self) -> None:
        super().close()
        self._break()


def readable_text(html: str) -> str:
    """The page's title, then its text: one line per heading, paragraph or list item."""
    extractor = _Extractor()
    extractor.feed(html)
    extractor.close()
    # A heading or list marker left with no text after it is no line at all.
    lines = [line for line in extractor.lines if line.strip("#- ")]
    title = _SPACES.sub(" ", extractor.title).strip()
    return "\n".join([f"Title: {title}", "", *lines] if title else lines)
