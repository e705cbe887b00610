"""The English of the `lineside` command line's --help texts and of argparse's own words, joined into
`edge.i18n.ENGLISH`; lineside/parser.py says them in the reader's language (docs/i18n.md)."""

from __future__ import annotations

from edge.locale.help_calibrate import CALIBRATE

# argparse's own words (its gettext msgids in Python 3.10-3.12). An error line's template is the line
# argparse writes, parameters in braces: lineside/parser.py recognises a line by it and says it again.
ARGPARSE: dict[str, str] = {
    "argparse.usage": "usage",
    "argparse.positionals": "positional arguments",
    "argparse.options": "options",
    "argparse.help": "show this help message and exit",
    "argparse.version": "show program's version number and exit",
    "argparse.error": "{prog}: error: {message}",
    "argparse.argument": "argument {argument}: {message}",
    "argparse.required": "the following arguments are required: {names}",
    "argparse.one_required": "one of the arguments {names} is required",
    "argparse.unrecognized": "unrecognized arguments: {arguments}",
    "argparse.invalid_choice": "invalid choice: {value} (choose from {choices})",
    "argparse.invalid_value": "invalid {type} value: {value}",
    "argparse.not_allowed": "not allowed with argument {other}",
    "argparse.expected_one": "expected one argument",
    "argparse.expected_at_most_one": "expected at most one argument",
    "argparse.expected_at_least_one": "expected at least one argument",
    "argparse.expected_n": "expected {n} arguments",
    "argparse.ambiguous": "ambiguous option: {option} could match {matches}",
    "argparse.ignored": "ignored explicit argument {value}",
}

# Shared by several commands' options.
_SHARED: dict[str, str] = {
    "help.lang": "language (default: the locale, LANG; else en)",
    "help.lang_config": "language (default: the config's station.language, else the locale (LANG), else en)",
    "help.config_demo": "station config (YAML); default: the embedded demo",
}

_TOP: dict[str, str] = {
    "help.lineside.about": (
        "lineside: an edge visual-inspection appliance (ONNX detector, Modbus TCP robot link)."
    ),
    "help.lineside.log_level": "log verbosity",
    # the engineers' commands: only their line in `lineside --help`; their own help stays English
    "help.bench": "measure the model's floor, the detector, end-to-end latency, throughput, memory, start-up",
    "help.soak": "run the demo line with the robot in the loop for N minutes, injecting faults",
    "help.train": "train a detector, classifier or anomaly model (offline) and export model.onnx + card.json",
    "help.eval": "evaluate an exported model on labelled data through the runtime, or check export parity",
    "help.dataset": "check, split and import YOLO-layout datasets",
}

_RUN: dict[str, str] = {
    "help.run": "run the inspection line (the embedded demo when no config is given)",
    "help.run.about": "Run the inspection line: capture, inference, robot link and recorder, supervised.",
    "help.run.check": "validate the config and exit (0 valid, 1 not)",
    "help.run.max_parts": "stop cleanly after N inspections",
    "help.run.state_dir": "demo only: where records go (default: XDG state dir)",
    "help.run.quiet": "no line per part, only the summary",
    "help.run.recipe": (
        "the recipe free-running parts use (overrides default_recipe); the demo's recipe 2 chains "
        "an anomaly model after the detector"
    ),
    "help.run.trigger": (
        "override trigger.mode; `--trigger robot` lets a robot (or lineside robot-sim) drive the demo"
    ),
    "help.run.examples": """examples:
  lineside run                          the embedded demo line (demo model, Modbus on 127.0.0.1:5020)
  lineside run --max-parts 50           the demo, stopping cleanly after 50 inspections
  lineside run --trigger robot          the demo, triggered by a robot (try: lineside robot-sim --demo)
  lineside run /etc/lineside/line.yaml  a real station
  lineside run --check line.yaml        validate a config and exit 0 (valid) or 1 (names the field)
""",
}

_DOCTOR: dict[str, str] = {
    "help.doctor": "check the installation: config, models, camera, calibration, port, disk, clock",
    "help.doctor.about": (
        "Check a station's installation; one PASS/WARN/FAIL line per check. Exit 0 when no "
        "check FAILs, 1 otherwise."
    ),
    "help.doctor.config": "station config (YAML); default: the demo",
    "help.doctor.json": "print the checks as one JSON document",
    "help.doctor.max_age": "WARN for a calibration older than this (default 180)",
    "help.doctor.disk_warn": "WARN with less free space than this where the records go (default 2)",
    "help.doctor.disk_fail": "FAIL with less free space than this (default 0.5)",
    "help.doctor.camera_timeout": "how long to wait for one frame (default: the source's open_timeout_s)",
    "help.doctor.examples": """checks, in order:
  config       the config loads and validates
  model[...]   every recipe's model: card, ONNX sha256, rules
  camera       the source opens and gives one frame within the timeout
  calibration  every recipe's calibration: frame size, lens, model of its thresholds, age
  modbus       the robot link's port is free (or served by a running lineside), or the robot reachable
  disk         free space where the records go
  clock, ntp   a sane date, not behind the newest record; NTP synchronisation
  runtime      Python, onnxruntime and its execution providers

examples:
  lineside doctor /etc/lineside/line.yaml
  lineside doctor line.yaml --json
""",
}

_INSPECT: dict[str, str] = {
    "help.inspect": "judge image files or folders with the line's detector and rules",
    "help.inspect.about": "Run the detector and decision rules on image files, as the line would.",
    "help.inspect.paths": "image files or folders",
    "help.inspect.model": "model folder (model.onnx + card.json); default: demo model",
    "help.inspect.config": "station config: take ROI and rules from its recipe",
    "help.inspect.recipe": "recipe number in --config (default: its default_recipe)",
    "help.inspect.json": "one JSON object per line",
    "help.inspect.min_confidence": "report detections down to F; the verdict rules are unchanged",
    "help.inspect.examples": """examples:
  lineside inspect part.png                       the shipped demo model and its default thresholds
  lineside inspect --json images/                 one JSON object per image (boxes in image pixels)
  lineside inspect --model models/pcb/2.0 --config line.yaml --recipe 2 images/
  lineside inspect --json --min-confidence 0.05 val/   report weak detections too (for escape/overkill curves)
  lineside inspect --json --model models/tiles-anomaly/1.0.0 tiles/   any model kind; each stage in "stages"
exit status: 0 all judged, 1 some image was a FAULT (unreadable, corrupt), 2 bad arguments or model.
""",
}

_MODELS: dict[str, str] = {
    "help.models": "list, verify, promote and roll back models in a registry",
    "help.models.about": (
        "The model registry: <registry>/<name>/<version>/ folders and <name>/promoted.json. "
        "A running appliance whose recipe names the registry picks up a promotion between parts."
    ),
    "help.models.registry": "registry folder (./models)",
    "help.models.list": "names, versions, current/previous, card metrics",
    "help.models.add": "copy an exported model folder in as <name>/<version>",
    "help.models.model_dir": "model.onnx, card.json (and eval/, parity.json)",
    "help.models.verify": "card, sha256, onnxruntime session, shapes, warm-up run",
    "help.models.promote": "make a version current, after the gate (escape rate, parity)",
    "help.models.eval_data": "YOLO dataset to evaluate on when no report exists",
    "help.models.max_escape": "gate: most escape rate allowed (gate.yaml or 0.03)",
    "help.models.note": "why, kept in the pointer's history",
    "help.models.rollback": "make the previous version current again (one step)",
    "help.models.examples": """examples:
  lineside models list --registry /var/lib/lineside/models
  lineside models add runs/pcb-2024-06/export --registry models
  lineside models verify pcb 1.2.0
  lineside models promote pcb 1.2.0 --eval-data datasets/pcb   # evaluates first when no report exists
  lineside models rollback pcb
""",
}

_ALARMS: dict[str, str] = {
    "help.alarms": "the running line's alarms: acknowledge them",
    "help.alarms.about": (
        "The running line's alarms (docs/spc.md). To list those raised: lineside records alarms."
    ),
    "help.alarms.ack": (
        "acknowledge the line alarms in force (their latches release; a lasting shift alarms again)"
    ),
    "help.alarms.ack.about": (
        "Acknowledge the running line's alarms: the charts in alarm are released (ALARM and\n"
        "STATUS bit 6 clear; a shift that lasts raises again by the rules) and the acknowledgement is\n"
        "recorded. Goes through the line's status page on this machine (status.enabled), with its\n"
        "bearer token (status.token_file) when it has one. An alarm never changed a verdict."
    ),
    "help.alarms.ack.chart": (
        "only this chart: reject_rate, class_rate:<class> (class_rate: every class), brightness, "
        "contrast, sharpness, score; repeat for several (default: every chart in alarm)"
    ),
    "help.alarms.ack.examples": """examples:
  lineside alarms ack --config /etc/lineside/line.yaml                  every chart in alarm
  lineside alarms ack --chart reject_rate --config /etc/lineside/line.yaml
  lineside alarms ack --chart class_rate                                every class's chart (the demo)
""",
}

_ROBOT_SIM: dict[str, str] = {
    "help.robot_sim": "act as the robot: trigger parts, decide them by the robot rules, inject faults",
    "help.robot_sim.about": (
        "Commissioning and conformance: the documented robot program against an appliance."
    ),
    "help.robot_sim.host": "appliance address (role client: address to bind)",
    "help.robot_sim.port": "Modbus TCP port (default 5020)",
    "help.robot_sim.role": "lineside's role",
    "help.robot_sim.base": "PDU address of offset 0 (default 0; role client: 128)",
    "help.robot_sim.unit": "Modbus unit id sent (UR sends 255)",
    "help.robot_sim.parts": "parts to trigger (default 20)",
    "help.robot_sim.deadline": "trigger-to-decision deadline",
    "help.robot_sim.poll": "poll period",
    "help.robot_sim.takt": "least time between triggers",
    "help.robot_sim.stop_after": "communication rejects in a row that stop the line",
    "help.robot_sim.inject": "fault to inject",
    "help.robot_sim.inject_from": "first part (0-based) to inject into",
    "help.robot_sim.inject_count": "parts to inject into",
    "help.robot_sim.hold": "heartbeat-stop silence / link-drop time offline",
    "help.robot_sim.truth": "CSV file,decision[,classes]: ground truth per image",
    "help.robot_sim.results": "the appliance's ZeroMQ PUB of final inspections",
    "help.robot_sim.ready_timeout": "seconds to wait for READY",
    "help.robot_sim.json": "one JSON object per part, then the summary",
    "help.robot_sim.ack_alarms": (
        "acknowledge line alarms: pulse CONTROL bit 2 (ACK_ALARMS) before a trigger while STATUS bit 6 is set"
    ),
    "help.robot_sim.demo": (
        "against the demo line (`lineside run --trigger robot`): its result stream and its parts' truth"
    ),
    "help.robot_sim.examples": """examples:
  lineside robot-sim --parts 50                          against `lineside run` on 127.0.0.1:5020
  lineside robot-sim --demo --parts 200                  against `lineside run --trigger robot` (the demo),
                                                         counting wrong accepts from the demo parts' truth
  lineside robot-sim --inject session-change --json      a fault case, one JSON object per line
  lineside robot-sim --results tcp://127.0.0.1:5571 --truth parts/truth.csv   count wrong accepts
  lineside robot-sim --role client --port 5502           serve the robot's registers (lineside role client)
exit status: 0 ok; 1 the line was stopped, a part was wrongly accepted or the protocol was broken; 2 bad input
""",
}

_RECORDS: dict[str, str] = {
    "help.records": "list or export inspection records",
    "help.records.about": "List or export inspection records (read-only; safe while the appliance runs).",
    "help.records.dir": "records folder (holds records.db); default: the demo's",
    "help.records.config": "appliance config file; its records folder is read",
    "help.records.verdict": "only this verdict",
    "help.records.since": "from this trigger time, inclusive: {time}",
    "help.records.until": "up to this trigger time, exclusive: {time}",
    "help.records.time": (
        "ISO time (2024-05-01T08:00, local unless it has an offset), 'now', or relative (-30m, -1h, -2d)"
    ),
    "help.records.limit": "only the latest N matching records",
    "help.records.format": "output format",
    "help.records.output": "write here (atomically) instead of stdout",
    # options the actions share
    "help.records.seq": "the record: SEQ, or BOOT:SEQ when boots repeat it",
    "help.records.dir_demo": "records folder; default: the demo's",
    "help.records.config_file": "appliance config file",
    "help.records.from": "from this trigger time: {time}",
    "help.records.to": "up to this trigger time: {time}",
    "help.records.mark": "mark a record as an escape, an overkill or for relabelling",
    "help.records.mark.about": (
        "Mark a record (stored in records.db's marks table; `lineside dataset import-records "
        "--marked` exports marked parts for relabelling)."
    ),
    "help.records.mark.as": "what the operator found",
    "help.records.mark.note": "free text, e.g. what the defect was",
    "help.records.show": "print a record's evidence and write its evidence picture",
    "help.records.show.about": (
        "Print why a record got its verdict (deciding stage, rule and margin, findings below "
        "threshold, each stage's score) and write its evidence picture (PNG: the crops with the box or heat "
        "map drawn, the rule and margin written under them)."
    ),
    "help.records.show.out": "evidence picture path (default: ./evidence-BOOT-SEQ.png)",
    "help.records.show.json": "print the stored evidence as JSON instead",
    "help.records.summary": (
        "the shift in sentences: yield, top reject causes and their trend, faults, line alarms"
    ),
    "help.records.summary.about": (
        "Say what happened on the line in sentences: yield, the top reject causes with\n"
        "their share and trend (the first half of the parts against the last half), faults and\n"
        "their causes, the line alarms raised. Without --since, every record is summarised."
    ),
    "help.records.summary.time": (
        "ISO time (2024-05-01T06:00, local unless it has an offset), 'now', or relative (-8h, -30m)"
    ),
    "help.records.summary.examples": """examples:
  lineside records summary --since -8h              the last eight hours (a shift)
  lineside records summary --since 2024-05-01T06:00 --until 2024-05-01T14:00
  lineside records summary --config /etc/lineside/line.yaml
  lineside records summary --lang ko                in Korean (default: the locale, LANG=ko_KR.UTF-8)
""",
    "help.records.alarms": "line alarms: those the line raised, or the records replayed through the charts",
    "help.records.alarms.about": (
        "List the line alarms the live line raised (docs/spc.md): chart, rule, subgroup or\n"
        "point, values, limits, the parts behind it and its chart picture. --replay instead replays the\n"
        "records through the charts (image drift then measures the kept images only). An alarm never\n"
        "changed a verdict."
    ),
    "help.records.alarms.replay": "replay the records through the charts (--png, --spc... imply it)",
    "help.records.alarms.png": "write a control chart PNG per alarm here",
    "help.records.alarms.spc": "YAML of the spc section (docs/spc.md); default: its defaults",
    "help.records.alarms.subgroup": "parts per p-chart subgroup (overrides --spc)",
    "help.records.alarms.baseline": "subgroups learnt as the centre (overrides --spc)",
    "help.records.alarms.reference": (
        "calibration file: its reference frame is the centre of image drift (else the first frames' mean)"
    ),
    "help.records.alarms.dir": "records folder",
    "help.records.alarms.config": "appliance config",
    "help.records.alarms.examples": """examples:
  lineside records alarms --since -8h                    the alarms the line raised in the last shift
  lineside records alarms --replay --since -8h           the records replayed through the charts
  lineside records alarms --replay --png /tmp/alarms     and a control chart picture per alarm
  lineside records alarms --spc spc.yaml --reference calibration/station.json   (implies --replay)
""",
}

_AAS: dict[str, str] = {
    "help.aas": "the station as an Asset Administration Shell (export)",
    "help.aas.about": "The station and its inspections as an Asset Administration Shell (docs/standards.md).",
    "help.aas.export": "write the station's AAS environment to an .aasx or .json file",
    "help.aas.export.about": (
        "Build the station's AAS environment (nameplate, technical data, AI models, interfaces, "
        "inspection results, record history) and write it atomically."
    ),
    "help.aas.export.out": "output file: FILE.aasx or FILE.json",
    "help.aas.export.state_dir": "demo only: where its records are (default: XDG state dir)",
    "help.aas.export.examples": """examples:
  lineside aas export --out station.aasx                 the demo line's shell (AAS 3.0 AASX package)
  lineside aas export /etc/lineside/line.yaml --out station.json
""",
}

HELP: dict[str, str] = {
    **ARGPARSE,
    **_SHARED,
    **_TOP,
    **_RUN,
    **_DOCTOR,
    **_INSPECT,
    **_MODELS,
    **_ROBOT_SIM,
    **_RECORDS,
    **_ALARMS,
    **_AAS,
    **CALIBRATE,
}
