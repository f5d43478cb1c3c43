"""Email addresses as identities: one spelling per mailbox, no invisible characters.

An address is normalised before it is checked or looked up: Unicode NFKC (so a
full-width `ａ@ｅｘａｍｐｌｅ.com` is the same identity as `a@example.com`, not a
look-alike registered beside it) and a lower-case domain. Control characters
(NUL, ESC, DEL, ...), format characters (zero-width spaces and joiners, the bidi
overrides such as U+202E) and any whitespace are refused outright: they are
never part of a real address and only serve to forge one that looks like another.
"""

from __future__ import annotations

import re
import unicodedata

MAX_EMAIL = 254
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")
# Unicode categories never allowed: controls, format (bidi, zero-width), separators,
# surrogates, private use and unassigned code points.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


class InvalidEmail(ValueError):
    """The address cannot be an identity; the message says why (safe to show)."""


def refused_character(value: str) -> str | None:
    """The first control, format or whitespace character in `value` (as U+XXXX), or None."""
    for ch in value:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            return f"U+{ord(ch):04X}"
    return None


def normalize_email(value: str) -> str:
    """The canonical form of an address (NFKC, lower-case domain); InvalidEmail otherwise."""
    value = unicodedata.normalize("NFKC", value.strip())
    bad = refused_character(value)
    if bad is not None:
        raise InvalidEmail(f"Email must not contain control, invisible or space characters ({bad})")
    if len(value) > MAX_EMAIL or not EMAIL_RE.match(value):
        raise InvalidEmail("Not a valid email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"
