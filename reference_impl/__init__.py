"""Pure-Python memif server and client, byte-exact on the wire."""
