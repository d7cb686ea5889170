"""The single error path: one clear line for the user, a traceback only with --debug."""

from __future__ import annotations


class KeyscanError(Exception):
    """An error the user can act on. The message says what happened and what to do."""

