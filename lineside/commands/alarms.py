"""`lineside alarms ack`: acknowledge the running line's alarms from a shell on the appliance, through its
status page's API (POST /api/alarms/ack on this machine, with the page's bearer token when it has one;
edge/status/acks.py). A thin layer: the alarms worker releases the charts and records who did it.
"""

from __future__ import annotations

import argparse
import getpass
import http.client
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from edge.errors import LinesideError
from edge.i18n import Message, render, say
from edge.spc.ack import chart_word, check_chart_name
from edge.station.config import LinesideConfig
from edge.status.acks import ROUTE, WAIT_S
from edge.status.auth import read_token
from lineside.commands.language import add_language, command_language

EXIT_OK = 0
EXIT_NOT_DONE = 1  # no line answered, the alarms worker is not running, or not confirmed in time
EXIT_BAD_INPUT = 2
ANY_ADDRESS = ("0.0.0.0", "::", "")  # a page bound to every address is reached on this machine's loopback


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    """Add `alarms ack`, its help texts in `lang`."""
    parser = subparsers.add_parser(
        "alarms", help=say("help.alarms", lang), description=say("help.alarms.about", lang)
    )
    actions = parser.add_subparsers(dest="alarms_action", metavar="ACTION")
    ack = actions.add_parser(
        "ack",
        help=say("help.alarms.ack", lang),
        description=say("help.alarms.ack.about", lang),
        epilog=say("help.alarms.ack.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ack.add_argument("--chart", action="append", metavar="NAME", help=say("help.alarms.ack.chart", lang))
    ack.add_argument("--config", type=Path, help=say("help.config_demo", lang))
    add_language(ack, lang)
    ack.set_defaults(handler=_handle)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_BAD_INPUT


def _handle(args: argparse.Namespace) -> int:
    try:
        lang = command_language(args.lang, args.config)
        if args.config is None:
            from lineside.demo import demo_config

            config = demo_config()
        else:
            from edge.station.config import load_config

            config = load_config(args.config)
        charts = tuple(check_chart_name(name) for name in args.chart or ())
    except (LinesideError, ValueError) as exc:
        print(f"lineside alarms ack: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_ack(config, charts, lang=lang)


def run_ack(
    config: LinesideConfig,
    charts: tuple[str, ...] = (),
    *,
    lang: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The command itself: 0 when the line answered (the charts released, or nothing was in alarm), 1 when
    it could not be done, 2 for a config that gives no way to the line; errors are one line on `stderr`."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        host, port, headers = _address(config)
    except LinesideError as exc:
        print(f"lineside alarms ack: {exc}", file=err)
        return EXIT_BAD_INPUT
    body = json.dumps({"source": "cli", "charts": list(charts), "user": _login_name()})
    try:
        status, reply = _post(host, port, headers, body)
    except OSError as exc:
        why = exc.strerror or str(exc)
        where = f"http://{host}:{port}/"
        print(f"lineside alarms ack: no line answers on {where} ({why}): is it running?", file=err)
        return EXIT_NOT_DONE
    if status == 200:
        for message in _said(reply, charts):
            out.write(render(message, lang) + "\n")
        return EXIT_OK
    if status == 202:
        out.write(render(Message("alarms.ack_pending", {"seconds": WAIT_S}), lang) + "\n")
        return EXIT_NOT_DONE
    why = reply.get("error") or f"HTTP {status}"
    print(f"lineside alarms ack: not acknowledged: {why} (HTTP {status})", file=err)
    return EXIT_NOT_DONE if status == 503 else EXIT_BAD_INPUT


def _address(config: LinesideConfig) -> tuple[str, int, dict[str, str]]:
    """Where the line's status API listens on this machine, and the headers it needs."""
    status = config.status
    if not config.spc.enabled:
        raise LinesideError("this line has no alarms (spc.enabled: false)")
    if not status.enabled:
        raise LinesideError(
            "the status page is off (status.enabled: false): the command reaches the running line through it"
        )
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if status.token_file is not None:
        headers["Authorization"] = f"Bearer {read_token(status.token_file)}"
    elif status.protected:
        raise LinesideError(
            "the status page asks for a login and has no token_file: give it one (status.token_file) for "
            "the command line"
        )
    host = "127.0.0.1" if status.bind in ANY_ADDRESS else status.bind
    return host, status.port, headers


def _post(host: str, port: int, headers: dict[str, str], body: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(host, port, timeout=WAIT_S + 5.0)
    try:
        conn.request("POST", ROUTE, body=body, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(data) if data else {}
    except ValueError:
        parsed = {"error": data.decode("utf-8", "replace").strip()[:200]}
    return reply.status, parsed if isinstance(parsed, dict) else {}


def _said(reply: dict[str, Any], asked: tuple[str, ...]) -> list[Message]:
    """What the line answered, in sentences: the charts released, or that nothing was in alarm; and the
    charts still in alarm when only some were named."""
    released = [chart_word(name) for name in reply.get("charts", [])]
    if released:
        lines = [Message("alarms.ack_done", {"charts": tuple(released)})]
    elif asked:
        lines = [Message("alarms.ack_nothing_named", {"charts": tuple(chart_word(c) for c in asked)})]
    else:
        lines = [Message("alarms.ack_nothing")]
    active = [chart_word(name) for name in reply.get("active", [])]
    if active:
        lines.append(Message("alarms.still_active", {"charts": tuple(active)}))
    return lines


def _login_name() -> str | None:
    """Who runs the command, for the record (an open page takes it as said; a token's records say both)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return None
