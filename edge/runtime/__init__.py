"""What runs the line: the supervisor, the worker processes, the ZeroMQ transport and messages between them,
their endpoints, the shared-memory frame ring, CPU placement and systemd's notify protocol.
"""
