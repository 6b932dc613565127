"""Peer adapters: one module per memif implementation."""
