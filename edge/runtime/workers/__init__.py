"""The appliance's worker processes (capture, inference, robot link, recorder) and their common lifecycle."""
