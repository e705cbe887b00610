"""The `lineside` subcommands: each module offers `register(subparsers)` and a handler tests can call."""
