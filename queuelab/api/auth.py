"""Bearer tokens: each maps to a user and a role (``user`` or ``admin``).

Tokens come from a file (one ``token user role`` per line) or ``QUEUELAB_API_TOKENS``
(``token:user:role`` separated by commas). They are kept only as SHA-256 digests, compared
in constant time against every known digest, and never logged. With no tokens configured
the server is a local development server: everyone is an anonymous admin, and the server
refuses to bind beyond loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from queuelab.errors import ConfigError

ROLES = ("user", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str | None  # None: the anonymous development user (may act as anyone)
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


DEVELOPER = Principal(None, "admin")


class TokenBook:
    def __init__(self, entries: dict[bytes, Principal]) -> None:
        self._entries = list(entries.items())

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, token: str) -> Principal | None:
        """The token's principal, comparing against every digest so that the time taken
        does not depend on which token (if any) matched."""
        digest = _digest(token)
        found = None
        for known, principal in self._entries:
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    @classmethod
    def load(cls, path: str | None = None, env: str | None = None) -> TokenBook:
        lines: list[tuple[str, str]] = []
        if path:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise ConfigError(f"tokens file {path!r} cannot be read: {exc.strerror}") from None
            lines += [(f"{path}:{n}", line) for n, line in enumerate(text.splitlines(), 1)]
        raw = os.environ.get("QUEUELAB_API_TOKENS", "") if env is None else env
        lines += [(f"QUEUELAB_API_TOKENS item {n}", item.replace(":", " ")) for n, item in enumerate(raw.split(","), 1)]
        entries: dict[bytes, Principal] = {}
        for where, line in lines:
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if len(parts) != 3 or parts[2] not in ROLES or len(parts[0]) < 16:
                raise ConfigError(
                    f"{where}: expected 'TOKEN USER ROLE' with a token of at least 16 characters and a role of "
                    f"{' or '.join(ROLES)}; got {len(parts)} field(s)"
                )  # the line itself is not shown: it may hold a token
            entries[_digest(parts[0])] = Principal(parts[1], parts[2])
        return cls(entries)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
