"""The `lineside` subcommands: each module offers `register(subparsers, lang)` (its help texts
said in `lang`) and a handler tests can call."""
