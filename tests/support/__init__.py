"""Test-only helpers (protocol-level test doubles); never imported by the product."""
