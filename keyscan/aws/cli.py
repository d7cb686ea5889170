"""AWS sub-commands and scan options, kept apart so `keyscan --version` imports no boto3."""

from __future__ import annotations

import argparse

from keyscan.model import ScanResult


def add_scan_options(parser: argparse.ArgumentParser) -> None:
    """Options `keyscan scan` gains for ownership checks and deactivation."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the AWS sub-commands (deactivate, reactivate, demo)."""


def after_scan(result: ScanResult, args: argparse.Namespace) -> int | None:
    """Run ownership checks / deactivation on a scan result; an exit code if one failed."""
    return None
