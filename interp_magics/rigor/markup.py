"""The small part of markdown the rule pages use, read into blocks and written as text or HTML.

Pages hold headings, paragraphs, ``- `` lists (continued by indented lines), fenced code blocks
and inline ```code```, ``**bold**``, ``*emphasis*`` and bare ``https://`` addresses. Nothing else
is interpreted: any other markup shows as the characters it is. HTML output escapes every
character of the source and links only ``http(s)`` addresses, so a page can never carry markup
or script of its own.
"""

from __future__ import annotations

import html
import re
import textwrap
from dataclasses import dataclass, field

WIDTH = 88  # columns of the terminal form

_HEADING = re.compile(r"(#{1,6})\s+(\S.*)")
_INLINE = re.compile(r"`([^`\n]+)`|\*\*([^*\n]+)\*\*|\*([^*\n]+)\*|(https?://[^\s<>\"'`]+)")
_TRAILING = ".,;:)"  # punctuation after an address that is not part of it


@dataclass
class Block:
    """A heading, paragraph, list or fenced code block of a page."""

    kind: str  # "heading", "paragraph", "list" or "code"
    text: str = ""  # heading or paragraph text, code block body
    level: int = 0  # heading level
    info: str = ""  # the code fence's info string ("python", "markdown", "output", ...)
    items: list[str] = field(default_factory=list)  # list items


def parse(text: str) -> list[Block]:
    """Return the blocks of a page's markdown, in order."""
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            out.append(Block("code", "\n".join(lines[i + 1 : end]), info=line[3:].strip()))
            i = end + 1
        elif m := _HEADING.fullmatch(line):
            out.append(Block("heading", m.group(2).strip(), level=len(m.group(1))))
            i += 1
        elif line.startswith("- "):
            items: list[str] = []
            while i < len(lines) and (lines[i].startswith("- ") or _continues(lines[i], items)):
                if lines[i].startswith("- "):
                    items.append(lines[i][2:].strip())
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append(Block("list", items=items))
        elif not line.strip():
            i += 1
        else:
            end = i
            while end < len(lines) and lines[end].strip() and not _starts_block(lines[end]):
                end += 1
            out.append(Block("paragraph", " ".join(s.strip() for s in lines[i:end])))
            i = end
    return out


def _continues(line: str, items: list[str]) -> bool:
    """Whether ``line`` continues the list item above it (an indented, non-blank line)."""
    return bool(items) and line.startswith("  ") and bool(line.strip())


def _starts_block(line: str) -> bool:
    """Whether ``line`` starts a block other than a paragraph."""
    return line.startswith(("```", "- ")) or bool(_HEADING.fullmatch(line))


# -- text, for a terminal -------------------------------------------------------------------------


def to_text(blocks: list[Block]) -> str:
    """Return the blocks as plain text for a terminal: wrapped, code indented and labelled."""
    parts: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            title = _plain(block.text)
            rule = "=" if block.level == 1 else "-"
            parts.append(f"{title}\n{rule * min(len(title), WIDTH)}")
        elif block.kind == "paragraph":
            parts.append(_wrap(_plain(block.text)))
        elif block.kind == "list":
            parts.append("\n".join(_wrap(_plain(item), "  - ", "    ") for item in block.items))
        else:
            label = cell_label(block.info)
            body = textwrap.indent(block.text, "    ")
            parts.append(f"  [{label}]\n{body}" if label else body)
    return "\n\n".join(parts) + "\n"


def _wrap(text: str, first: str = "", rest: str = "") -> str:
    return textwrap.fill(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _plain(text: str) -> str:
    """Return inline markdown as terminal text: emphasis marks dropped, code kept in backticks."""
    return _INLINE.sub(
        lambda m: f"`{m.group(1)}`" if m.group(1) else m.group(2) or m.group(3) or m.group(4), text
    )


def cell_label(info: str) -> str:
    """Return how an example's code fence is labelled ("code cell, In[3]"), "" for plain code."""
    kind, _, count = info.partition(" ")
    names = {"python": "code cell", "markdown": "markdown cell", "output": "output"}
    if kind not in names:
        return ""
    return f"{names[kind]}, {count.strip()}" if count.strip() else names[kind]


# -- HTML ------------------------------------------------------------------------------------------


def to_html(blocks: list[Block]) -> str:
    """Return the blocks as an HTML fragment: every character escaped, no script, no style."""
    parts: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            level = min(block.level, 6)
            parts.append(f"<h{level}>{inline_html(block.text)}</h{level}>")
        elif block.kind == "paragraph":
            parts.append(f"<p>{inline_html(block.text)}</p>")
        elif block.kind == "list":
            items = "".join(f"<li>{inline_html(item)}</li>" for item in block.items)
            parts.append(f"<ul>{items}</ul>")
        else:
            label = cell_label(block.info)
            kind = block.info.partition(" ")[0] if label else "code"
            caption = f"<figcaption>{html.escape(label)}</figcaption>" if label else ""
            parts.append(
                f'<figure class="cell {html.escape(kind)}">{caption}'
                f"<pre><code>{html.escape(block.text)}</code></pre></figure>"
            )
    return "\n".join(parts)


def inline_html(text: str) -> str:
    """Return inline markdown as escaped HTML with code, emphasis and http(s) links."""
    out: list[str] = []
    pos = 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        code, bold, em, url = m.groups()
        tail = ""
        if code:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold:
            out.append(f"<strong>{html.escape(bold)}</strong>")
        elif em:
            out.append(f"<em>{html.escape(em)}</em>")
        else:
            stripped = url.rstrip(_TRAILING)
            tail = url[len(stripped) :]
            href = html.escape(stripped, quote=True)
            out.append(f'<a href="{href}" rel="noopener noreferrer">{href}</a>')
        out.append(html.escape(tail))
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)
