"""OPC UA user logins: a file of user names and scrypt password hashes, never plain passwords.

One line per user, `name:scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`; `#` starts a comment. Make or
change a line with `python -m edge.opcua.users add FILE NAME` (asks for the password twice, or reads
one line from stdin when it is not a terminal) and point `opcua.users_file` at the file.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge.atomic import atomic_write_text
from edge.errors import LinesideError

SCHEME = "scrypt"
# scrypt cost: about 50 ms and 16 MiB per check on a small x86 core: slow to guess offline, and a login
# happens once per session, never per part.
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_PASSWORD_BYTES = 1024


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The stored form of a password: scheme, cost, salt and hash."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=N, r=R, p=P, dklen=HASH_BYTES)
    b64 = base64.b64encode
    return f"{SCHEME}${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True only when `password` hashes to `stored`; any malformed entry is a refusal, never an error."""
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        return False
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != SCHEME:
            return False
        salt, expected = base64.b64decode(salt_b64, validate=True), base64.b64decode(hash_b64, validate=True)
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def parse_users(text: str, origin: str) -> dict[str, str]:
    """name -> stored hash; a line that is not `name:scrypt$...` is refused, naming the file and line."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not name or not stored.startswith(f"{SCHEME}$") or stored.count("$") != 5:
            raise LinesideError(f"{origin}:{number}: expected 'name:{SCHEME}$...' (a hash, never a password)")
        users[name] = stored
    return users


def load_users(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LinesideError(f"{path}: cannot read the OPC UA users file ({exc.strerror})") from None
    return parse_users(text, str(path))


def check_login(users: Mapping[str, str], name: str | None, password: str | None) -> bool:
    stored = users.get(name or "")
    if stored is None or password is None:
        # Spend the same time on an unknown name, so a probe cannot tell names from passwords.
        verify_password(password or "", hash_password("", salt=b"\0" * SALT_BYTES))
        return False
    return verify_password(password, stored)


def add_user(path: Path, name: str, password: str) -> None:
    """Add or replace one user's line, atomically."""
    if not name or ":" in name or name != name.strip():
        raise LinesideError(f"user name {name!r}: must be non-empty, without ':' or outer spaces")
    if not password:
        raise LinesideError("empty password refused")
    users = load_users(path) if path.exists() else {}
    users[name] = hash_password(password)
    lines = ["# OPC UA users (edge/opcua/users.py): name:scrypt hash; never a plain password"]
    lines += [f"{user}:{stored}" for user, stored in users.items()]
    atomic_write_text(path, "\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise LinesideError("the passwords differ")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge.opcua.users",
        description="Add or change an OPC UA user (the password is stored as an scrypt hash).",
        epilog="example: python -m edge.opcua.users add /etc/lineside/opcua-users integrator",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add or replace a user")
    add.add_argument("file", type=Path)
    add.add_argument("name")
    args = parser.parse_args(argv)
    try:
        add_user(args.file, args.name, _read_password())
    except LinesideError as exc:
        print(f"edge.opcua.users: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
