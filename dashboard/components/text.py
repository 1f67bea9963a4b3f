"""Text from files and users, drawn where Streamlit reads markdown.

Streamlit renders as markdown far more than `st.markdown`: captions, every notice
(`st.info`, `st.error`...), widget labels and help, metric labels and values, image
captions, expander, status, tab and spinner labels, progress text, headings and radio
options. A file name, a DICOM tag value, a zip entry, a note or an error message that
holds `**bold**`, `[a](javascript:...)`, `<b>`, `$x$`, `:red[x]` or `:material/home:` must
be read as it is, not rendered: every such text goes through `literal` first. Selectbox
and multiselect options, `st.text`, `st.code`, `st.json` and table cells are plain text
in Streamlit 1.67: they take the text unchanged.
"""

from __future__ import annotations

import re

import streamlit as st

from core.studies import one_line

# CommonMark lets any ASCII punctuation be escaped with a backslash. Escaped here: every
# character that can start emphasis, code, a link or image ([, ], and ( ) after them),
# HTML or an entity (<, &), a heading, list, quote or table (#, +, ), >, |, =), LaTeX ($),
# a directive (:name[), strikethrough (~) or an autolink (:, @). Left as they are: / ' " ,
# ; ? %, which start nothing once those are escaped, and - _ . between two letters or
# digits, where none of them can mean anything (a list marker, an emphasis or a rule
# needs a space or a line's start beside it; "www." gets a joiner, below). So
# "CT_small.dcm" and "braintumor-xception" read the same in the page's source.
_MARKUP = re.compile(r"(?i)(?<![a-z0-9])[-_.]|[-_.](?![a-z0-9])|[!#$&()*+:<=>@\[\\\]^`{|}~]")
# U+2060 WORD JOINER: invisible, and not a word character. Streamlit's frontend rewrites
# some patterns in the text nodes of the parsed markdown, where escapes no longer count:
# `:material_name:` to an icon, `:streamlit:` to its logo, emoji shortcodes (`:smile:`),
# typographic pairs (`->` to an arrow, `--` to a dash, `<=`, `>=`, `~=`) and, through
# remark-gfm, "http://", "www." and e-mail addresses to links; before parsing it turns
# every `:material/` into `:material_`. A joiner inside each such pattern breaks it
# without a visible change (and only there, so "user:mine" reads and searches as typed).
_JOINER = "\u2060"
_BREAKS = re.compile(r"(?<=:)(?=[\w+\-]*:|//|material/)|(?<=@)(?=[\w\-]+\.[\w\-])"
                     r"|(?i:(?<=www)(?=\.))|(?<=[-<>~])(?=[->=])")
_LEADING = re.compile(r"^[ \t]+", re.MULTILINE)


def literal(text: object, code: bool = False) -> str:
    """`text` as markdown that Streamlit shows exactly as the text reads; with `code`, as
    an inline code span (an id, a file or layer name set apart)."""
    text = str(text)
    if code:
        return _code_span(text)
    out = _BREAKS.sub(_JOINER, text)
    out = _MARKUP.sub(lambda m: "\\" + m.group(), out)
    # Four leading spaces would start a code block, and a paragraph drops its indent.
    return _LEADING.sub(lambda m: "".join(f"&#{ord(c)};" for c in m.group()), out)


def _code_span(text: str) -> str:
    # Nothing is parsed inside a code span and the frontend's rewrites of text leave it
    # alone, but for `:material/`, rewritten in the source before parsing. Its fence is
    # longer than any run of backticks inside; a space pads an edge that is a backtick
    # (one space each side is dropped when both sides have one).
    # A span cannot cross a blank line, and shows a line break as a space anyway.
    text = re.sub(r"[\r\n]+", " ", text).replace(":material/", ":" + _JOINER + "material/")
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == " " == text[-1]) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def show_error(error: BaseException | str) -> None:
    """An error as one line (newlines folded, controls escaped, at most 300 characters),
    its text shown literally: never a traceback."""
    st.error(literal(one_line(error, limit=300)), icon=":material/error:")
