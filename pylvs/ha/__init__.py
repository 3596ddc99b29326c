"""High availability: heartbeat (:mod:`pylvs.ha.heartbeat`), its media, resources and addresses."""

__all__: list[str] = []
