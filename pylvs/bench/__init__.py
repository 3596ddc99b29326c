"""The throughput benchmark (``scripts/bench``, ``pylvs bench``): pylvs against the kernel.

A script, not a test: it builds its own namespaces (:mod:`pylvs.bench.lab`), measures packet
rates (:mod:`pylvs.bench.pps`; sent by :mod:`pylvs.bench.pacer`, and by trafgen at full speed)
and HTTP connection rates with wrk (:mod:`pylvs.bench.http`), and reports
(:mod:`pylvs.bench.report`); :mod:`pylvs.bench.run` ties them together.
"""

__all__: list[str] = []
