"""The HTTP API: in-process, fuzzed, hostile input, auth isolation and a real server process."""
