"""A second, independent OPC UA client for the tests: open62541 through the `o6` package, run as a process.

It connects with Basic256Sha256 SignAndEncrypt and a user name, reads the VisionStateMachine's
CurrentState, subscribes to ResultReady events on the VisionSystem and prints one `O6 {json}` line per
event (o6 prints a banner of its own, so the prefix marks ours), until it has `--events` or `--seconds`
ran out. Exit 0 when it got them all.

Only ever in its own process: the o6 build on PyPI ends any process that imported it after ten minutes
unless it holds a licence credential (free "script mode"; commercial use permitted, or AGPL elsewhere).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import threading
import time
from typing import Any

import o6

MV_EVENT = "ns=2;i=1024"  # ResultReadyEventType; the server registers Machine Vision as ns=2
FIELDS = ("ResultId", "PartId", "ResultState", "CreationTime", "ResultContent", "InternalRecipeId", "JobId")


def say(kind: str, **data: Any) -> None:
    print("O6 " + json.dumps({"kind": kind, **data}, default=str), flush=True)


def first_string(body: bytes, skip: int = 0) -> str:
    """The first String of a structure's binary body (after `skip` bytes: an encoding mask)."""
    (length,) = struct.unpack_from("<i", body, skip)
    return body[skip + 4 : skip + 4 + length].decode("utf-8")


def event_record(fields: dict[str, Any]) -> dict[str, Any]:
    content = fields["/2:ResultContent"]
    return {
        "message": str(fields["/Message"]),
        "result_id": first_string(fields["/2:ResultId"].body),
        # PartIdDataType has an optional Description: a 4-byte encoding mask comes first.
        "part_id": first_string(fields["/2:PartId"].body, skip=4),
        "job_id": first_string(fields["/2:JobId"].body),
        "recipe_id": first_string(fields["/2:InternalRecipeId"].body, skip=4),
        "result_state": int(fields["/2:ResultState"]),
        "creation_time": str(fields["/2:CreationTime"]),
        "content": json.loads(str(content[0])),
    }


def get_result(client: Any, result_id: str) -> None:
    """Call ResultManagement.GetResultById and print what came back (the error and the content)."""
    raw = result_id.encode("utf-8")
    # The ResultIdDataType argument, encoded by hand: o6 2.2 sends its own machine_vision types with an
    # unmapped namespace index, which a server cannot resolve.
    argument = o6.ExtensionObject("ns=2;i=5274", struct.pack("<i", len(raw)) + raw)
    status, handle, result, error = client.call(
        "ns=1;s=VisionSystem.ResultManagement",
        "ns=1;s=VisionSystem.ResultManagement.GetResultById",
        [argument, o6.Int32(1000)],
    )
    body: bytes = result.body
    start = body.find(b'{"boot_id"')
    content = json.loads(body[start:].decode("utf-8")) if start >= 0 else None
    say("get", id=result_id, status=int(status), handle=int(handle), error=int(error), content=content)


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("url", "cert", "key", "server-cert", "app-uri", "user", "password"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument(
        "--get",
        action="store_true",
        help="at the end, GetResultById for the first and last event and for 0-0",
    )
    args = parser.parse_args()
    client = o6.Client(
        args.url,
        certificate=args.cert,
        privateKey=args.key,
        trustList=[args.server_cert],
        securityMode=3,  # SignAndEncrypt
        securityPolicy="http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
        applicationUri=args.app_uri,
        username=args.user,
        password=args.password,
    )
    client.connect()
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_event(fields: dict[str, Any]) -> None:
        record = event_record(fields)
        with lock:
            events.append(record)
        say("event", **record)

    try:
        state = client.read("ns=1;s=VisionSystem.VisionStateMachine.CurrentState")
        say("state", text=str(state))
        select = ", ".join(["/Message", *(f"/2:{name}" for name in FIELDS)])
        client.monitorEvent(
            "ns=1;s=VisionSystem", on_event, filter=f"SELECT {select} WHERE OFTYPE {MV_EVENT}"
        )
        say("ready")
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            with lock:
                if len(events) >= args.events:
                    break
            time.sleep(0.05)
        if args.get and events:
            for result_id in (events[0]["result_id"], events[-1]["result_id"], "0-0"):  # BOOT_ID 0: never
                get_result(client, result_id)
    finally:
        client.disconnect()
    return 0 if len(events) >= args.events else 1


if __name__ == "__main__":
    sys.exit(main())
