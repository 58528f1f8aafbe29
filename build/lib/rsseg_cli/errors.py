"""Errors a user can fix. The CLI prints them as one paragraph and exits with code 2, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message says what is wrong and how to fix it."""

    exit_code = 2


class Interrupted(Exception):
    """Raised from a signal handler so that cleanup code in `finally` blocks runs (SIGTERM)."""
