"""`voicefleet token`: make a client key, or check a resume token against the configured secret."""

from __future__ import annotations

import argparse
import secrets
import sys
import time

from voicefleet.config import Settings
from voicefleet.realtime.tokens import TokenError, verify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="token_command", metavar="ACTION")
    sub.required = True
    sub.add_parser("new-key", help="print a new random client key (add it to VOICEFLEET_API_KEYS)")
    check = sub.add_parser("inspect", help="verify a resume token with VOICEFLEET_TOKEN_SECRET and print it")
    check.add_argument("token")


def run(args: argparse.Namespace) -> int:
    if args.token_command == "new-key":
        print("vf-" + secrets.token_urlsafe(32))
        return 0
    settings = Settings.from_env()
    if not settings.token_secret:
        print("voicefleet token: set VOICEFLEET_TOKEN_SECRET", file=sys.stderr)
        return 2
    try:
        token = verify(args.token, settings.token_secret, now=time.time())
    except TokenError as exc:
        print(f"invalid: {exc.code}: {exc}", file=sys.stderr)
        return 1
    print(
        f"session_id={token.session_id} tenant={token.tenant} version={token.version} expires_at={int(token.expires_at)}"
    )
    return 0
