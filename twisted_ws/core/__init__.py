"""
The I/O-free core of twisted_ws: handshake, frames, close codes, messages.

Nothing here imports Twisted or touches a socket; the modules turn bytes into
structured results and back, so they can be tested and fuzzed on their own.
The Twisted glue in the parent package drives them.
"""
