"""Lines of a text file end at "\n" only.

JSON escapes "\n" inside a string but, written with `ensure_ascii=False`, leaves U+2028,
U+2029 and \x85 as they are; `str.splitlines` splits at those too (and at \x0b, \x0c and
\x1c-\x1e), so a prompt holding one would read back as two lines. Every reader of a file
with one record per line (this tool's JSON Lines, a user's prompt list) splits here.
"""

from __future__ import annotations


def text_lines(text: str, keepends: bool = False) -> list[str]:
    """`text`'s lines, split at "\n" only (a last line without one counts). With `keepends`
    each keeps its "\n" (for digests over the exact text); without, a trailing "\r" (a file
    written with CRLF line ends) is dropped too."""
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    if keepends:
        return lines
    return [line.removesuffix("\n").removesuffix("\r") for line in lines]
