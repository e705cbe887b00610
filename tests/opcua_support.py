"""Helpers for the OPC UA tests: client certificates, a users file made by its own command, and
asyncua's command-line clients (`uaread`, `uals`, `uasubscribe`) run as processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

USER, PASSWORD = "integrator", "correct horse battery staple"
# asyncua's command-line tools always present this ApplicationUri; their certificate must carry it.
ASYNCUA_CLI_URI = "urn:example.org:FreeOpcUa:opcua-asyncio"
O6_URI = "urn:lineside:tests:o6"
STATE_NODE = "ns=1;s=VisionSystem.VisionStateMachine.CurrentState"
MESSAGE = re.compile(r"Text='ResultId=(\S+) PartId=(\S+) Recipe=(\d+) Verdict=(\w+)'")
STATE_TEXT = re.compile(r"value=LocalizedText\(Locale='en', Text='(\w+)'\)")


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path


def make_client_cert(folder: Path, name: str, uri: str) -> ClientCert:
    """A client application certificate (DER) and key (PEM), as an OPC UA client would make them."""
    key = cert_gen.generate_private_key()
    names = [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())]
    cert = cert_gen.generate_self_signed_app_certificate(
        key, name, {}, names, extended=[ExtendedKeyUsageOID.CLIENT_AUTH], days=30
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return ClientCert(cert_path, key_path)


def make_users_file(path: Path) -> None:
    """The users file, made the documented way: `python -m edge.opcua.users add FILE NAME`."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge.opcua.users", "add", str(path), USER],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in path.read_text(encoding="utf-8")


def tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    assert Path(found).exists(), f"{name} (installed with asyncua) not found"
    return found


def url(port: int, user: str | None = USER, password: str = PASSWORD) -> str:
    login = f"{user}:{password}@" if user is not None else ""
    return f"opc.tcp://{login}127.0.0.1:{port}/lineside"


def security(client: ClientCert) -> str:
    return f"--security=Basic256Sha256,SignAndEncrypt,{client.cert},{client.key}"


def uaread(port: int, client: ClientCert, node: str, **login: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("uaread"), "-u", url(port, **login), security(client), "-n", node, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def wait_for_state(port: int, client: ClientCert, state: str, timeout: float) -> None:
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        proc = uaread(port, client, STATE_NODE)
        last = proc.stdout.strip() + proc.stderr.strip()[-300:]
        if proc.returncode == 0 and f"Text='{state}'" in proc.stdout:
            return
        time.sleep(0.5)
    raise AssertionError(f"CurrentState never read {state}; last: {last}")


@dataclass
class Watcher:
    """A client process whose output lines are collected as they come."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.lines)):
                return
            if self.process.poll() is not None and not predicate(list(self.lines)):
                time.sleep(0.2)  # the reader may still be catching up on the last lines
                if predicate(list(self.lines)):
                    return
                break
            time.sleep(0.05)
        tail = "".join(self.lines[-20:])
        raise AssertionError(
            f"timed out waiting for {what}; exit {self.process.poll()}; output tail:\n{tail}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.reader is not None:
            self.reader.join(5)


def watch(args: list[str]) -> Watcher:
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    watcher = Watcher(process)

    def collect() -> None:
        assert process.stdout is not None
        for text in process.stdout:
            watcher.lines.append(text)

    watcher.reader = threading.Thread(target=collect, daemon=True)
    watcher.reader.start()
    return watcher


def uasubscribe(port: int, client: ClientCert, *args: str) -> Watcher:
    return watch([tool("uasubscribe"), "-u", url(port), security(client), *args])


def subscribed(lines: list[str]) -> bool:
    return any("Type Ctr-C to exit" in line for line in lines)


def events_in(lines: list[str]) -> list[tuple[str, str, int, str]]:
    """(result id, part id, recipe, verdict) of each ResultReady event uasubscribe printed."""
    found = []
    for line in lines:
        match = MESSAGE.search(line)
        if match and "EventType:NodeId(Identifier=1024" in line:
            found.append((match[1], match[2], int(match[3]), match[4]))
    return found


def states_in(lines: list[str]) -> list[str]:
    return [m[1] for line in lines for m in [STATE_TEXT.search(line)] if m and "DataChangeEvent" in line]
