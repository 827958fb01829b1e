"""Values and decisions with plain asserts and injected times: no store behaviour, no worker (the
simulator's one comparison with a real pool is marked slow)."""
