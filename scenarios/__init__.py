"""Conformance scenarios, written only against scenarios/api.py."""
