"""The whole system from outside: chaos, soak, faults, crashes, the browser, the CLI, packaging, deploy, bench."""
