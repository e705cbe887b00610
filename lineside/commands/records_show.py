"""`lineside records show SEQ`: one record's evidence (what fired, by how much, what came close) printed, and
its evidence picture written; a thin layer over edge.records.evidence. Read only.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from edge.atomic import atomic_write_bytes
from edge.errors import LinesideError
from edge.i18n import say
from edge.locale import LANGUAGES, environment_language, language_from
from edge.locale.names import Glossary
from edge.records.evidence import evidence_lines, evidence_png, picture_language, read_record
from lineside.commands.language import command_glossary, command_language

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register_show(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    lang: str,
    config_resolver: Callable[[Path], Path],
) -> None:
    """Add `show` under `lineside records`, its help texts in `lang`."""
    show = actions.add_parser(
        "show", help=say("help.records.show", lang), description=say("help.records.show.about", lang)
    )
    show.add_argument("record", metavar="SEQ", help=say("help.records.seq", lang))
    show.add_argument("--out", type=Path, help=say("help.records.show.out", lang))
    show.add_argument("--json", action="store_true", help=say("help.records.show.json", lang))
    show.add_argument("--lang", dest="show_lang", choices=LANGUAGES, help=say("help.lang_config", lang))
    where = show.add_mutually_exclusive_group()
    where.add_argument("--dir", dest="show_dir", type=Path, help=say("help.records.dir_demo", lang))
    where.add_argument("--config", dest="show_config", type=Path, help=say("help.records.config_file", lang))
    show.set_defaults(handler=functools.partial(_handle_show, config_resolver=config_resolver))


def _handle_show(args: argparse.Namespace, config_resolver: Callable[[Path], Path]) -> int:
    records_dir: Path | None = args.show_dir or getattr(args, "dir", None)
    config = args.show_config or getattr(args, "config", None)
    try:
        if records_dir is None and config is not None:
            records_dir = config_resolver(config)
        lang = command_language(args.show_lang, config)
        glossary = command_glossary(config, demo=records_dir is None)
        if records_dir is None:
            from lineside.demo import default_state_dir

            records_dir = default_state_dir() / "records"
    except (LinesideError, OSError) as exc:
        print(f"lineside records: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return show_record(records_dir, args.record, args.out, as_json=args.json, lang=lang, glossary=glossary)


def show_record(
    records_dir: Path,
    key: str,
    out: Path | None = None,
    *,
    as_json: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    lang: str | None = None,
    glossary: Glossary | None = None,
) -> int:
    """The command itself: prints the evidence in `lang` (None: the locale's) and writes the picture (in
    the same language where a font for it is installed, else English, said on `stderr`), class and stage
    names in the plant's words from `glossary`; exit 2 with one line on error."""
    write = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        record = read_record(records_dir, key)
        if as_json:
            write.write(json.dumps(record.evidence, indent=2, sort_keys=True) + "\n")
            return EXIT_OK
        picture = out or Path(f"evidence-{record.boot_id}-{record.seq}.png")
        atomic_write_bytes(picture, evidence_png(records_dir, record, lang, glossary=glossary))
        if picture_language(lang) != (language_from(lang) if lang else environment_language()):
            note = "no font with Hangul installed (Debian fonts-noto-cjk): the picture is in English"
            print(f"lineside records: {note}", file=err)
    except (LinesideError, OSError, ValueError) as exc:
        print(f"lineside records: {exc}", file=err)
        return EXIT_BAD_INPUT
    for line in evidence_lines(record, lang, glossary):
        write.write(line + "\n")
    write.write(say("show.picture", lang, path=picture) + "\n")
    return EXIT_OK
