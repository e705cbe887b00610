"""Is every message the code uses in every catalog? Used by tests/test_i18n.py and `python -m
edge.locale.check` (exit 1 and one line per gap).

Ids are extracted from the code's syntax trees: every string literal in the first argument of a call to
`Message(...)` or `say(...)`, both branches of `a if c else b` included (Babel's extractor glues those two
into one id); and in the status page (`*.html`), every `t("id", ...)` and `data-i18n="id"`. Ids built
at run time (`f"fault.{kind}"`) are covered by `edge.i18n.ENGLISH`, which is joined
in; each id must have a non-empty msgstr in every language's .po with the same {parameters} as the English.
"""

from __future__ import annotations

import ast
import re
import string
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from edge.locale import LANGUAGES, LOCALE_DIR, po_path, read_catalog

KEYWORDS = ("Message", "say")  # the first argument is the message id
# The page's words: `t("page.x", ...)` in its script, `data-i18n="page.x"` on its labels (a prefix such as
# `t("verdict." + v)` is a family ENGLISH covers).
PAGE_IDS = re.compile(r'\bt\("([A-Za-z_]+(?:\.[A-Za-z0-9_]+)+)"|data-i18n(?:-alt)?="([^"]+)"')
PACKAGES = ("edge", "calibration", "lineside")


def code_ids(root: Path, packages: Iterable[str] = PACKAGES) -> set[str]:
    """Every literal message id the code passes to `Message` or `say` under `root`'s packages."""
    ids: set[str] = set()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and _name(node.func) in KEYWORDS and node.args:
                    ids |= _literals(node.args[0])
        for page in sorted((root / package).rglob("*.html")):
            for script_id, label_id in PAGE_IDS.findall(page.read_text(encoding="utf-8")):
                ids.add(script_id or label_id)
    return ids


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _literals(arg: ast.expr) -> set[str]:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}
    if isinstance(arg, ast.IfExp):
        return _literals(arg.body) | _literals(arg.orelse)
    return set()  # an id built at run time: ENGLISH and the tests of its family cover it


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def gaps(ids: Iterable[str], english: Mapping[str, str], locale_dir: Path = LOCALE_DIR) -> list[str]:
    """One line per problem: an id the code uses with no English, or missing, empty or with other
    parameters in a language's catalog."""
    problems = [f"{i}: used in the code, not in edge.i18n.ENGLISH" for i in sorted(set(ids) - set(english))]
    for language in LANGUAGES:
        path = po_path(language, locale_dir)
        catalog = read_catalog(path) if path.is_file() else {}
        for message_id in sorted(set(ids) | set(english)):
            template = catalog.get(message_id)
            if template is None:
                problems.append(f"{message_id}: missing (or empty) in {path}")
            elif message_id in english and _fields(template) != _fields(english[message_id]):
                problems.append(
                    f"{message_id}: {path} has parameters {sorted(_fields(template))}, "
                    f"the English {sorted(_fields(english[message_id]))}"
                )
    return problems


def main() -> int:
    from edge.i18n import ENGLISH

    root = Path(__file__).resolve().parents[2]
    problems = gaps(code_ids(root), ENGLISH)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
