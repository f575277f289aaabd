"""Self-tests of tests/peers (the real-phone harness)."""
