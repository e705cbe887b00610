"""The robot link: the Modbus TCP handshake with a robot or PLC, and the ledger of every triggered part."""
