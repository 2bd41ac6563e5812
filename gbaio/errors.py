"""One-line reasons for operating-system errors, for messages an operator reads."""

from __future__ import annotations

import os


def os_reason(exc: OSError, about: str | os.PathLike[str] | None = None) -> str:
    """``strerror``, naming the path at fault unless it is ``about`` (the path the message names already)."""
    if isinstance(exc, FileExistsError | NotADirectoryError) and exc.filename:
        # mkdir of a/b/c fails on a when a is a file: say so rather than "File exists".
        return f"{exc.filename} is not a directory"
    reason = exc.strerror or str(exc)
    if exc.filename and (about is None or os.fspath(exc.filename) != os.fspath(about)):
        return f"{reason}: {exc.filename}"
    return reason
