"""Bearer tokens, which a station's config names by file and never holds itself: read and checked here."""

from __future__ import annotations

from pathlib import Path

from edge.errors import LinesideError

MIN_TOKEN_CHARS = 16  # a token an attacker on the plant network cannot guess in a shift


def read_token(path: Path, field: str) -> str:
    """The bearer token: the file's first line; an unreadable, empty or short one is a one-line error
    naming the config `field` (e.g. `aas.token_file`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LinesideError(f"{field}: {path}: cannot read ({exc.strerror})") from None
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_CHARS:
        raise LinesideError(f"{field}: {path}: the token must be at least {MIN_TOKEN_CHARS} characters")
    return token
