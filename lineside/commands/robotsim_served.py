"""`lineside robot-sim --role client`: the robot's general-purpose registers served over Modbus TCP, as a
robot controller does, for lineside's role (b) client to write its block into and poll the robot block from.
"""

from __future__ import annotations

import asyncio
import threading
import time

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.errors import LinesideError
from edge.robotlink import registers as reg


class ServedRegisters:
    """Role (b): the robot's general-purpose registers (22 from `base`), served over Modbus TCP for
    lineside to write its block into and poll the robot block from; the robot reads and writes them
    locally. drop() closes lineside's connections for a while (link-drop injection)."""

    def __init__(self, host: str, port: int, base: int) -> None:
        self._address, self._base = (host, port), base
        self._image = [0] * reg.BLOCK_COUNT
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._drop_until = 0.0
        self._failure: str | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def start(self, timeout_s: float = 5.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._failure:
            raise LinesideError(f"robot-sim: cannot serve on {self._address}: {self._failure or 'timeout'}")

    async def _serve(self) -> None:
        data = SimData(self._base, values=[0] * reg.BLOCK_COUNT, datatype=DataType.REGISTERS)
        server = ModbusTcpServer(SimDevice(id=0, simdata=[data], action=self._action), address=self._address)
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as exc:
            self._failure = str(exc)
            self._ready.set()
            return
        self._ready.set()
        while not self._stopping.is_set():
            if time.monotonic() < self._drop_until:
                for connection in list(server.active_connections.values()):
                    connection.close()
            await asyncio.sleep(0.02)
        await server.shutdown()  # type: ignore[no-untyped-call]

    async def _action(  # noqa: PLR0917 (pymodbus's SimAction signature)
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        first = self._base - start_address
        with self._lock:
            if set_values is not None:
                offset = address - self._base
                self._image[offset : offset + len(set_values)] = [int(v) for v in set_values]
            registers[first : first + reg.BLOCK_COUNT] = self._image
        return None

    def read(self, offset: int, count: int) -> list[int]:
        with self._lock:
            return self._image[offset : offset + count]

    def write(self, offset: int, values: list[int]) -> None:
        with self._lock:
            self._image[offset : offset + len(values)] = values

    def drop(self, hold_s: float) -> None:
        self._drop_until = time.monotonic() + hold_s

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5.0)
