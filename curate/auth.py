"""Bearer tokens of ``curate serve``: read and write scopes, compared in constant time.

A token is a random secret string. The server never keeps secrets on disk: the tokens file stores
the SHA-256 digest of each token with a name and a scope. Tokens come from three places, merged:

* the tokens file ``<workspace>/tokens.json`` (written by :func:`add_token`)::

      {"tokens": [{"name": "ci", "scope": "write", "sha256": "9f86d0..."}]}

* the environment variable ``CURATE_TOKENS``: comma-separated ``TOKEN:SCOPE`` pairs, e.g.
  ``CURATE_TOKENS="s3cret-r:read,s3cret-w:write"``;
* explicit arguments (``curate serve --token-read T --token-write T``, or
  ``create_app(path, tokens={"T": "write"})``).

Scopes: ``read`` allows every query (frames, runs, search, export downloads, job status);
``write`` allows everything, including ingest, label, embed jobs, select and server-side exports.

A request without a valid ``Authorization: Bearer TOKEN`` header is answered 401; a read token
on a write route is answered 403. The presented token is hashed and compared with *every* stored
digest using :func:`hmac.compare_digest`, so the time taken does not depend on which (or whether
a) token matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

from curate.errors import CurateError, InvalidInputError

__all__ = [
    "READ",
    "WRITE",
    "SCOPES",
    "TOKENS_FILE",
    "TOKENS_ENV",
    "AuthError",
    "AuthenticationError",
    "PermissionDeniedError",
    "TokenEntry",
    "TokenSet",
    "add_token",
    "digest",
    "load_tokens",
    "parse_token_spec",
]

logger = logging.getLogger(__name__)

READ = "read"
WRITE = "write"
#: Valid scopes; ``write`` implies ``read``.
SCOPES = (READ, WRITE)
#: Name of the tokens file inside a workspace directory.
TOKENS_FILE = "tokens.json"
#: Environment variable with ``TOKEN:SCOPE`` pairs.
TOKENS_ENV = "CURATE_TOKENS"


class AuthError(CurateError):
    """Base class of authentication and authorisation errors of the HTTP service."""


class AuthenticationError(AuthError):
    """No token, a malformed ``Authorization`` header, or an unknown token (HTTP 401)."""


class PermissionDeniedError(AuthError):
    """A valid token whose scope does not allow the request (HTTP 403)."""


def digest(token: str) -> str:
    """Hex SHA-256 digest of a token (what the tokens file stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_scope(scope: str, where: str) -> str:
    scope = str(scope).strip().lower()
    if scope not in SCOPES:
        raise InvalidInputError(
            f"unknown token scope {scope!r} in {where}; use one of: {', '.join(SCOPES)}"
        )
    return scope


@dataclass(frozen=True)
class TokenEntry:
    """One accepted token: its digest, a name for logs and a scope."""

    sha256: str
    scope: str
    name: str = ""


class TokenSet:
    """The tokens a server accepts.

    Parameters
    ----------
    entries : iterable of TokenEntry

    Notes
    -----
    :meth:`check` is O(number of tokens) and compares every digest, matched or not.
    """

    def __init__(self, entries: Iterable[TokenEntry] = ()) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TokenSet({len(self._entries)} tokens)"

    def merged(self, other: "TokenSet") -> "TokenSet":
        """A token set holding the entries of both."""
        return TokenSet(self._entries + other._entries)

    @classmethod
    def from_mapping(cls, tokens: Mapping[str, str], *, where: str = "tokens=") -> "TokenSet":
        """Build from ``{secret: scope}``."""
        entries = []
        for k, (secret, scope) in enumerate(tokens.items()):
            if not isinstance(secret, str) or not secret.strip():
                raise InvalidInputError(f"token #{k + 1} in {where} is empty; tokens are non-empty strings")
            entries.append(TokenEntry(digest(secret.strip()), _check_scope(scope, where), f"arg{k + 1}"))
        return cls(entries)

    def check(self, authorization: Optional[str], needed: str) -> TokenEntry:
        """Validate an ``Authorization`` header value against the scope ``needed``.

        Parameters
        ----------
        authorization : str or None
            The header value, ``"Bearer TOKEN"``.
        needed : {"read", "write"}

        Returns
        -------
        TokenEntry
            The matching entry.

        Raises
        ------
        AuthenticationError
            Missing or malformed header, or unknown token.
        PermissionDeniedError
            Known token without the ``needed`` scope.
        """
        if not authorization:
            raise AuthenticationError(
                "this request needs a token: send 'Authorization: Bearer TOKEN' "
                "(curate.connect(url, token=...), --token or $CURATE_TOKEN)"
            )
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise AuthenticationError(
                "malformed Authorization header: expected 'Bearer TOKEN'"
            )
        presented = digest(value).encode("ascii")
        found: Optional[TokenEntry] = None
        for entry in self._entries:  # no early exit: time does not depend on the match
            if hmac.compare_digest(presented, entry.sha256.encode("ascii")):
                found = entry
        if found is None:
            raise AuthenticationError("unknown token: check the token the server was started with")
        if needed == WRITE and found.scope != WRITE:
            raise PermissionDeniedError(
                f"token {found.name or '?'!r} has scope {found.scope!r}; this request changes the "
                "workspace and needs a 'write' token"
            )
        return found


def parse_token_spec(spec: str, *, where: str = TOKENS_ENV) -> TokenSet:
    """Parse ``"TOKEN:SCOPE,TOKEN:SCOPE"`` (the format of ``$CURATE_TOKENS``)."""
    mapping: dict[str, str] = {}
    for k, part in enumerate(p.strip() for p in spec.split(",")):
        if not part:
            continue
        secret, sep, scope = part.rpartition(":")
        if not sep or not secret:
            raise InvalidInputError(
                f"entry #{k + 1} of {where} is not TOKEN:SCOPE (scope read or write)"
            )
        mapping[secret] = scope
    return TokenSet.from_mapping(mapping, where=where)


def _tokens_file(workspace: Union[str, Path]) -> Path:
    return Path(workspace) / TOKENS_FILE


def _read_tokens_file(path: Path) -> TokenSet:
    try:
        doc = json.loads(path.read_text())
        rows = doc["tokens"]
        entries = [
            TokenEntry(str(r["sha256"]).lower(), _check_scope(r["scope"], str(path)), str(r.get("name", "")))
            for r in rows
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            f"tokens file {path} is unreadable ({exc}); fix or delete it and add tokens with "
            "curate.auth.add_token()"
        ) from None
    for e in entries:
        if len(e.sha256) != 64 or any(c not in "0123456789abcdef" for c in e.sha256):
            raise InvalidInputError(f"tokens file {path}: {e.name!r} has no valid sha256 digest")
    return TokenSet(entries)


def load_tokens(
    workspace: Union[str, Path],
    tokens: Union[None, TokenSet, Mapping[str, str]] = None,
    *,
    use_env: bool = True,
) -> TokenSet:
    """All tokens a server for ``workspace`` accepts: file + ``$CURATE_TOKENS`` + ``tokens``.

    Parameters
    ----------
    workspace : str or pathlib.Path
        Workspace directory (its ``tokens.json`` is read when present).
    tokens : TokenSet or mapping of secret -> scope, optional
        Extra tokens (from CLI flags or code).
    use_env : bool
        Whether to read ``$CURATE_TOKENS``.
    """
    result = TokenSet()
    path = _tokens_file(workspace)
    if path.is_file():
        result = result.merged(_read_tokens_file(path))
    if use_env and os.environ.get(TOKENS_ENV):
        result = result.merged(parse_token_spec(os.environ[TOKENS_ENV]))
    if isinstance(tokens, TokenSet):
        result = result.merged(tokens)
    elif tokens:
        result = result.merged(TokenSet.from_mapping(tokens))
    return result


def add_token(workspace: Union[str, Path], *, scope: str = READ, name: str = "") -> str:
    """Create a new random token, store its digest in ``<workspace>/tokens.json``, return it.

    The secret is returned once and never stored; keep it (e.g. in ``$CURATE_TOKEN``).
    """
    scope = _check_scope(scope, "add_token(scope=...)")
    path = _tokens_file(workspace)
    rows = []
    if path.is_file():
        _read_tokens_file(path)  # validate before rewriting
        rows = json.loads(path.read_text())["tokens"]
    secret = secrets.token_urlsafe(32)
    rows.append({"name": name or f"token{len(rows) + 1}", "scope": scope, "sha256": digest(secret)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"tokens": rows}, indent=2) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    logger.info("added %s token %r to %s", scope, rows[-1]["name"], path)
    return secret
