"""The sans-I/O core of pylvs: packets, checksums, rewrites, services, schedulers, connections.

Nothing in this package touches the world: no sockets, no clock, no threads. Time arrives as an
argument (``now``, in seconds) and decisions leave as return values.
"""
