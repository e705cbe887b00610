"""Fault campaigns and soak runs: `lineside run` with the robot program in the loop, seeded fault
injection, and an accounting of wrong accepts, lost records and recovery time (imports nothing here)."""
