"""The daemon: ``uproar run`` wired together and kept running.

Owns: building the app from a config (``app``), the run loop and its signals (``loop``), one
poller per source (``runner``, ``sources``, ``source_health``, ``ops``), engagement re-reads
(``refresh``), scale-out leases (``leader``), ``/healthz`` and Prometheus metrics (``health``,
``metrics``), and systemd's notify/watchdog protocol (``systemd``, ``watchdog``).

May import: ``connectors``, ``models``, ``monitor.config``, the spine (``monitor.pipeline``,
``monitor.clock``, ``monitor.errors``, ...) and the stages (``detect``, ``alerts``, ``archive``,
``analyst``, ``serve``). Must not be imported by: the stages, the spine, ``connectors`` or
``models`` — only ``monitor.cli`` (and ``monitor.backtest``'s replay of the daemon) sit above it.
"""
