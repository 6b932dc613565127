"""Harness: starts memif peers, wires them together, and cleans up."""
