"""Who may look at the status page: browser logins (a session cookie) and a bearer token for scrapers.

People log in on the page's form with a name and password from `status.users_file` (scrypt hashes, the OPC UA
users file format); the server then sets an HttpOnly, SameSite=Strict session cookie. Prometheus and scripts
send `Authorization: Bearer <token>` from `status.token_file` (as the AAS API). Neither secret is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

from edge.errors import LinesideError
from edge.opcua.users import check_login, load_users
from edge.station import tokenfile
from edge.status.config import StatusConfig

COOKIE = "lineside_status"
SESSION_S = 12 * 3600.0  # a shift and then some: an operator logs in once per shift, not per break
MAX_SESSIONS = 256  # oldest dropped first: a login flood cannot grow the worker's memory


def read_token(path: Path) -> str:
    """The status page's bearer token (`status.token_file`)."""
    return tokenfile.read_token(path, "status.token_file")


def read_users(path: Path) -> dict[str, str]:
    """name -> scrypt hash from `status.users_file`; at least one user, else a one-line error."""
    try:
        users = load_users(path)
    except LinesideError as exc:
        raise LinesideError(f"status.users_file: {exc}") from None
    if not users:
        raise LinesideError(
            f"status.users_file: {path}: no user in it (add one: python -m edge.opcua.users add)"
        )
    return users


class StatusGuard:
    """Decides whether a request may see the page; holds the logged-in sessions (in memory: a restarted
    status worker asks everyone to log in again, which costs nothing on the line)."""

    def __init__(self, users: Mapping[str, str], token: str | None) -> None:
        self._users = dict(users)
        self._token = token
        self._sessions: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        # One password check at a time: scrypt costs ~50 ms of CPU and 16 MiB, and a burst of guesses must
        # not take more than one core from the line.
        self._login_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: StatusConfig) -> StatusGuard | None:
        """The guard the config asks for, or None when the page is open (127.0.0.1 without credentials)."""
        if not config.protected:
            return None
        users = read_users(config.users_file) if config.users_file is not None else {}
        token = read_token(config.token_file) if config.token_file is not None else None
        return cls(users, token)

    @property
    def has_users(self) -> bool:
        return bool(self._users)

    @property
    def user_count(self) -> int:
        return len(self._users)

    def allows(self, authorization: str, cookie: str) -> bool:
        """True for a request whose Authorization header has the bearer token, or whose Cookie header has a
        live session."""
        scheme, _, given = authorization.partition(" ")
        if self._token is not None and scheme.lower() == "bearer":
            # Constant time, so the reply's timing does not leak how much of a guess was right.
            return hmac.compare_digest(given.strip().encode(), self._token.encode())
        return self.session_user(cookie) is not None

    def identify(self, authorization: str, cookie: str) -> str | None:
        """Who an admitted request is, for the records of what it did: the login's name, or "token" for the
        bearer token (None: neither)."""
        scheme, _, given = authorization.partition(" ")
        if self._token is not None and scheme.lower() == "bearer":
            return "token" if hmac.compare_digest(given.strip().encode(), self._token.encode()) else None
        return self.session_user(cookie)

    def session_user(self, cookie: str) -> str | None:
        """Who the Cookie header's session belongs to, if it is live."""
        key = _session_key(cookie)
        if key is None:
            return None
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                return None
            if entry[1] < time.monotonic():
                del self._sessions[key]
                return None
            return entry[0]

    def login(self, name: str, password: str) -> str | None:
        """A new session's cookie value for a right name and password, else None."""
        with self._login_lock:
            ok = check_login(self._users, name, password)
        if not ok:
            return None
        value = secrets.token_urlsafe(32)
        with self._lock:
            # Keyed by a hash of the cookie, so a lookup's timing says nothing about a guessed value.
            self._sessions[_digest(value)] = (name, time.monotonic() + SESSION_S)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return value

    def logout(self, cookie: str) -> None:
        key = _session_key(cookie)
        if key is not None:
            with self._lock:
                self._sessions.pop(key, None)


def set_cookie(value: str) -> str:
    """The Set-Cookie header of a new session: not readable by scripts, never sent by another site."""
    return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(SESSION_S)}"


def clear_cookie() -> str:
    return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def _session_key(cookie: str) -> bytes | None:
    if not cookie:
        return None
    try:
        morsel = SimpleCookie(cookie).get(COOKIE)
    except CookieError:
        return None
    return None if morsel is None or not morsel.value else _digest(morsel.value)
