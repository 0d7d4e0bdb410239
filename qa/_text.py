"""Names from exports, printed safely: control characters shown as escapes, never sent raw.

Category, annotator, image and file names come from the exports and the manifest, which anyone may
have written. A name holding a newline or an escape sequence (``"car\\nqa: error: FAKE\\x1b[31m"``)
would forge lines or colours on a terminal, and XML 1.0 cannot hold most control characters at all.
:func:`visible` escapes them the way ``repr`` does (the ``!r`` of the ALN003 messages), leaving every
printable character, non-ASCII letters included, as it is. The CLI passes every name, table cell and
finding line it prints through it; the JUnit writer every text it writes.

This module imports nothing from ``qa``.
"""

from __future__ import annotations


def visible(text) -> str:
    """``text`` with each non-printable character (controls, separators other than the space,
    surrogates, unassigned code points) written as its ``repr`` escape.

    Examples
    --------
    >>> visible("car\\nqa: error: FAKE\\x1b[31m")
    'car\\\\nqa: error: FAKE\\\\x1b[31m'
    >>> visible("Straße 7"), visible(3)
    ('Straße 7', '3')
    >>> visible("a\\x00b\\u2028c")
    'a\\\\x00b\\\\u2028c'
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def visible_lines(text: str) -> str:
    """Each line of a multi-line text made :func:`visible` (the line breaks themselves kept)."""
    return "\n".join(visible(line) for line in str(text).split("\n"))
