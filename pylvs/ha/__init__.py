"""High availability: the sockets of connection synchronisation (:mod:`pylvs.ha.sync`)."""

__all__: list[str] = []
