"""The English of `lineside run`'s start-up lines and of the line alarms' chart pictures (their titles,
axes and legends), joined into `edge.i18n.ENGLISH`; kept apart so the catalog module stays small."""

from __future__ import annotations

LINE: dict[str, str] = {
    # `lineside run`: what it starts, before the first part (lineside/commands/run.py)
    "run.started": "lineside: station '{station}', source {source}, Modbus {link}, records {records}",
    "run.link_client": "client of {host}:{port}",
    "run.link_server": "server on {host}:{port}",
    "run.status_page": "lineside: status page {page} (metrics at {page}metrics)",
    "run.valid": "{origin}: valid ({recipes} recipe(s), source {source}, trigger {trigger})",
    "run.demo_config": "embedded demo config",
    # a line alarm's control chart picture (edge/spc/picture.py, lineside/commands/records_alarms_png.py)
    "spc.picture.title": "{chart}: {rule} at {unit} {index}",
    "spc.legend.rate": "rate",
    "spc.legend.value": "value",
    "spc.legend.ewma": "EWMA",
    "spc.legend.upper": "UCL",
    "spc.legend.lower": "LCL",
    "spc.legend.limits": "limits",
    "spc.legend.centre": "centre",
    "spc.legend.baseline": "baseline",
    "spc.legend.pattern": "alarm pattern",
}
