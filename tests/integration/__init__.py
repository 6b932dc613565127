"""Integration tests against real memif peers."""
