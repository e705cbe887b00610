"""`lineside records summary`: the shift in sentences a supervisor reads; a thin layer over
edge.records.shift (the numbers and sentences) and edge.i18n (the words). Read-only, safe while the line runs.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from edge.errors import LinesideError
from edge.i18n import Message, say
from edge.locale import LANGUAGES
from edge.locale.names import Glossary, say_named
from edge.records.alarms import recorded_acks, recorded_alarms
from edge.records.query import query
from edge.records.schema import DB_FILE
from edge.records.shift import summarise
from edge.records.shift_alarms import alarm_sentences
from edge.spc.config import SpcConfig
from lineside.commands.language import command_glossary, command_language
from lineside.commands.timearg import parse_window

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # as `lineside records`


def register_summary(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    lang: str,
    config_resolver: Callable[[Path], Path],
) -> None:
    """Add `summary` under `lineside records`, its help texts in `lang`."""
    summary = actions.add_parser(
        "summary",
        help=say("help.records.summary", lang),
        description=say("help.records.summary.about", lang),
        epilog=say("help.records.summary.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    time = Message("help.records.summary.time")
    since, until = say("help.records.from", lang, time=time), say("help.records.to", lang, time=time)
    summary.add_argument("--since", dest="summary_since", metavar="T", help=since)
    summary.add_argument("--until", dest="summary_until", metavar="T", help=until)
    where = summary.add_mutually_exclusive_group()
    where.add_argument(
        "--dir", dest="summary_dir", metavar="DIR", type=Path, help=say("help.records.dir_demo", lang)
    )
    config_help = say("help.records.config_file", lang)
    where.add_argument("--config", dest="summary_config", metavar="FILE", type=Path, help=config_help)
    summary.add_argument("--lang", dest="summary_lang", choices=LANGUAGES, help=say("help.lang_config", lang))
    summary.set_defaults(handler=functools.partial(_handle, config_resolver=config_resolver))


def _handle(args: argparse.Namespace, config_resolver: Callable[[Path], Path]) -> int:
    # --dir/--config/--since/--until may be given before `summary` (the records parser's) or after it.
    records_dir: Path | None = args.summary_dir or args.dir
    config = args.summary_config or args.config
    try:
        if records_dir is None and config is not None:
            records_dir = config_resolver(config)
        lang = command_language(args.summary_lang, config)
        spc = None if config is None else _station_spc(config)
        glossary = command_glossary(config, demo=records_dir is None)
    except LinesideError as exc:
        print(f"lineside records summary: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if records_dir is None:
        from lineside.demo import default_state_dir

        records_dir = default_state_dir() / "records"
    return run_summary(
        records_dir,
        since=args.summary_since or args.since,
        until=args.summary_until or args.until,
        lang=lang,
        spc=spc,
        glossary=glossary,
    )


def _station_spc(config: Path) -> SpcConfig:
    from edge.station.config import load_config

    return load_config(config).spc


def run_summary(
    records_dir: Path,
    *,
    since: str | None = None,
    until: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    now: float | None = None,
    lang: str | None = None,
    spc: SpcConfig | None = None,
    glossary: Glossary | None = None,
) -> int:
    """The command itself: prints the sentences in `lang` (None: the locale's), class and stage names in
    the plant's words from `glossary`, the line alarms' latching judged with `spc` (the station's spc
    section; None: its defaults); errors are one line on `stderr` and exit code 2."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    now_s = time.time() if now is None else now
    try:
        since_s, until_s = parse_window(since, until, now_s)
        db_path = records_dir / DB_FILE
        if not db_path.exists():
            # A station that has not recorded a part yet: one clear line, not an error.
            messages = [Message("summary.empty", {"where": str(records_dir)})]
        else:
            records = query(db_path, since=since_s, until=until_s)
            messages = summarise(records, since_s, until_s)
            if records:
                stored = recorded_alarms(records_dir, since_s)
                alarms = [a for a in stored if until_s is None or a.raised_at < until_s]
                acked = recorded_acks(records_dir, since_s)
                acks = [a for a in acked if until_s is None or a.acked_at < until_s]
                messages += alarm_sentences(alarms, records, spc or SpcConfig(), acks)
    except (LinesideError, OSError) as exc:
        print(f"lineside records summary: {exc}", file=err)
        return EXIT_BAD_INPUT
    for message in messages:
        out.write(say_named(message, lang, glossary) + "\n")
    return EXIT_OK
