"""Users, passwords, JWT bearer tokens and SSO: the built-in auth extension (see docs/auth.md)."""
