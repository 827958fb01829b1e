"""Harnesses the tests share (not tests): worker and API processes, the recorder app, chaos and soak."""
