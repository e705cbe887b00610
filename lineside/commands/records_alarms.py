"""`lineside records alarms`: the line alarms the live line recorded (the records' `alarms` table, schema 4),
one line each with its chart picture; `--replay` instead replays the records through the line-alarm charts
(edge/spc), and `--png DIR` draws a control chart per replayed alarm. Read-only, safe while the line runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

import yaml
from pydantic import ValidationError

from edge.errors import LinesideError
from edge.i18n import Message, say
from edge.judge.inspection import Verdict
from edge.locale import LANGUAGES, environment_language, language_from
from edge.locale.names import Glossary, say_named
from edge.records.alarms import recorded_acks, recorded_alarms
from edge.records.evidence import picture_language
from edge.records.query import query
from edge.records.schema import DB_FILE
from edge.spc.ack import chart_word, who_word
from edge.spc.alarm import Alarm
from edge.spc.config import SpcConfig
from edge.spc.drift import reference_measures
from edge.spc.replay import kept_image_loader, replay
from lineside.commands.language import command_glossary, command_language
from lineside.commands.timearg import parse_window

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # as `lineside records`


def register_alarms(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    lang: str,
    config_resolver: Callable[[Path], Path],
) -> None:
    """Add `alarms` under `lineside records`, its help texts in `lang`."""
    alarms = actions.add_parser(
        "alarms",
        help=say("help.records.alarms", lang),
        description=say("help.records.alarms.about", lang),
        epilog=say("help.records.alarms.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    time = Message("help.records.time")
    since, until = say("help.records.from", lang, time=time), say("help.records.to", lang, time=time)
    alarms.add_argument("--since", dest="alarms_since", metavar="T", help=since)
    alarms.add_argument("--until", dest="alarms_until", metavar="T", help=until)
    alarms.add_argument("--replay", action="store_true", help=say("help.records.alarms.replay", lang))
    alarms.add_argument("--png", type=Path, metavar="DIR", help=say("help.records.alarms.png", lang))
    alarms.add_argument("--spc", type=Path, metavar="FILE", help=say("help.records.alarms.spc", lang))
    alarms.add_argument("--subgroup", type=int, metavar="N", help=say("help.records.alarms.subgroup", lang))
    baseline = say("help.records.alarms.baseline", lang)
    alarms.add_argument("--baseline-subgroups", type=int, metavar="K", help=baseline)
    reference = say("help.records.alarms.reference", lang)
    alarms.add_argument("--reference", type=Path, metavar="CALIBRATION", help=reference)
    where = alarms.add_mutually_exclusive_group()
    dir_help = say("help.records.alarms.dir", lang)
    where.add_argument("--dir", dest="alarms_dir", metavar="DIR", type=Path, help=dir_help)
    config_help = say("help.records.alarms.config", lang)
    where.add_argument("--config", dest="alarms_config", metavar="FILE", type=Path, help=config_help)
    alarms.add_argument("--lang", dest="alarms_lang", choices=LANGUAGES, help=say("help.lang_config", lang))
    alarms.set_defaults(handler=functools.partial(_handle, config_resolver=config_resolver))


def _handle(args: argparse.Namespace, config_resolver: Callable[[Path], Path]) -> int:
    # --dir/--config/--since/--until may be given before `alarms` (the records parser's) or after it.
    records_dir: Path | None = args.alarms_dir or args.dir
    config = args.alarms_config or args.config
    try:
        if records_dir is None and config is not None:
            records_dir = config_resolver(config)
        # The station's language and its words for class names; the demo's for the demo's records.
        lang = command_language(args.alarms_lang, config)
        glossary = command_glossary(config, demo=records_dir is None)
    except LinesideError as exc:
        print(f"lineside records alarms: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if records_dir is None:
        from lineside.demo import default_state_dir

        records_dir = default_state_dir() / "records"
    overrides = {"subgroup": args.subgroup, "baseline_subgroups": args.baseline_subgroups}
    replay_options = (args.png, args.spc, args.subgroup, args.baseline_subgroups, args.reference)
    if not args.replay and all(option is None for option in replay_options):
        since, until = args.alarms_since or args.since, args.alarms_until or args.until
        return run_recorded(records_dir, since=since, until=until, lang=lang, glossary=glossary)
    return run_alarms(
        records_dir,
        since=args.alarms_since or args.since,
        until=args.alarms_until or args.until,
        png=args.png,
        spc_file=args.spc,
        pchart={k: v for k, v in overrides.items() if v is not None},
        reference=args.reference,
        lang=lang,
        glossary=glossary,
    )


def load_spc(path: Path | None, pchart: dict[str, int] | None = None) -> SpcConfig:
    """The spc section from a YAML file (its keys at the top level, or under `spc:`), with overrides."""
    data: dict[str, object] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise LinesideError(f"{path}: cannot read ({exc})") from None
        if not isinstance(loaded, dict):
            raise LinesideError(f"{path}: expected a mapping of the spc section")
        data = dict(loaded.get("spc", loaded))
    if pchart:
        section = data.get("pchart")
        data["pchart"] = {**(section if isinstance(section, dict) else {}), **pchart}
    try:
        return SpcConfig.model_validate(data)
    except ValidationError as exc:
        where = path or "--subgroup/--baseline-subgroups"
        raise LinesideError(f"{where}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def run_alarms(
    records_dir: Path,
    *,
    since: str | None = None,
    until: str | None = None,
    png: Path | None = None,
    spc_file: Path | None = None,
    pchart: dict[str, int] | None = None,
    reference: Path | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    now: float | None = None,
    lang: str | None = None,
    glossary: Glossary | None = None,
) -> int:
    """The command itself: prints the alarms and draws their pictures in `lang` (None: the locale's), class
    names in the plant's words from `glossary`; errors are one line on `stderr` and exit code 2."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    now_s = time.time() if now is None else now
    try:
        since_s, until_s = parse_window(since, until, now_s)
        config = load_spc(spc_file, pchart)
        ref = None if reference is None else reference_measures(reference)
        db_path = records_dir / DB_FILE
        if not db_path.exists():
            raise LinesideError(f"{records_dir}: no records database ({DB_FILE})")
        records = query(db_path, since=since_s, until=until_s)
        charts, counts = replay(records, config, kept_image_loader(records_dir), ref)
        pictures = []
        if png is not None and charts.alarms:
            from lineside.commands.records_alarms_png import write_pngs

            pictures = write_pngs(charts, png, lang, glossary)
            if picture_language(lang) != (language_from(lang) if lang else environment_language()):
                note = "no font with Hangul installed (Debian fonts-noto-cjk): the pictures are in English"
                print(f"lineside records alarms: {note}", file=err)
    except (LinesideError, OSError) as exc:
        print(f"lineside records alarms: {exc}", file=err)
        return EXIT_BAD_INPUT
    numbers = {"parts": counts.parts, "judged": counts.judged, "images": counts.images}
    lines = [
        Message("spc.count", {"alarms": len(charts.alarms), **numbers})
        if charts.alarms
        else Message("spc.none", numbers)
    ]
    lines += [dataclasses.replace(a.message(), indent=1) for a in charts.alarms]
    needed = min((c.config.baseline for c in charts.image.charts.values()), default=0)
    if counts.judged and not counts.images:
        lines.append(Message("spc.no_images"))
    elif 0 < counts.images < needed:
        lines.append(Message("spc.few_images", {"images": counts.images, "baseline": needed}))
    for message in lines:
        out.write(say_named(message, lang, glossary) + "\n")
    for picture in pictures:
        print(f"wrote {picture}", file=err)
    return EXIT_OK


def run_recorded(
    records_dir: Path,
    *,
    since: str | None = None,
    until: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    now: float | None = None,
    lang: str | None = None,
    glossary: Glossary | None = None,
) -> int:
    """The alarms the live line stored, oldest first, each with its chart picture's path; the counts of
    the parts in the same window head them; said in `lang` (None: the locale's) with the plant's names
    from `glossary`. Errors are one line on `stderr` and exit code 2."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    now_s = time.time() if now is None else now
    try:
        since_s, until_s = parse_window(since, until, now_s)
        db_path = records_dir / DB_FILE
        if not db_path.exists():
            raise LinesideError(f"{records_dir}: no records database ({DB_FILE})")
        stored = [
            a for a in recorded_alarms(records_dir, since_s) if until_s is None or a.raised_at <= until_s
        ]
        acks = [a for a in recorded_acks(records_dir, since_s) if until_s is None or a.acked_at <= until_s]
        records = query(db_path, since=since_s, until=until_s)
    except (LinesideError, OSError) as exc:
        print(f"lineside records alarms: {exc}", file=err)
        return EXIT_BAD_INPUT
    numbers = {
        "parts": len(records),
        "judged": sum(r.verdict is not Verdict.FAULT for r in records),
        "images": sum(r.image_path is not None and not r.image_evicted for r in records),
    }
    head = (
        Message("spc.count", {"alarms": len(stored), **numbers}) if stored else Message("spc.none", numbers)
    )
    out.write(say_named(head, lang, glossary) + "\n")
    for entry in stored:
        message = dataclasses.replace(Alarm.from_json(entry.alarm).message(), indent=1)
        out.write(say_named(message, lang, glossary) + "\n")
        if entry.chart_png is not None:  # a path: the same in every language
            out.write(f"    {records_dir / entry.chart_png}\n")
    if acks:  # who released the latches, when (edge/spc/ack.py)
        out.write(say_named(Message("spc.acks", {"count": len(acks)}), lang, glossary) + "\n")
    for ack in acks:
        params = {
            "time": datetime.fromtimestamp(ack.acked_at).strftime("%Y-%m-%d %H:%M:%S"),
            "who": who_word(ack.source, ack.user),
            "charts": tuple(chart_word(c) for c in ack.charts),
        }
        out.write(say_named(Message("spc.ack", params, indent=1), lang, glossary) + "\n")
    return EXIT_OK
