"""Topology: run labels, network namespaces/veth/TAP, NUMA placement, and reaping of leftovers."""
