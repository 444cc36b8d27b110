"""etcdmain: the ``pyetcd`` command — etcd 3.4's flags, environment and config file in, a running member out.

Contract (etcd's ``etcdmain`` package, same names):

- ``config.parse(argv, environ) -> Config`` reads the command line exactly as ``etcd`` 3.4.23 does: the same
  flag names and defaults, ``ETCD_*`` environment variables, ``--config-file`` YAML, and the same messages
  and exit codes when it refuses (``ConfigError.message`` / ``.exit_code``: 0 for ``--help``/``--version``
  on stdout, 2 for a malformed command line, 1 for an invalid configuration, on stderr).
- ``config.compute_ids(cfg) -> (cluster_id, member_id)`` derives the IDs a new member bootstraps with, bit
  for bit as etcd does, so a cluster of ours reports the IDs etcd would.
- ``log.configure(cfg)`` / ``log.get_logger()``: the process logger, writing etcd's zap JSON lines.
- ``main.main()`` ties them to ``embed.Etcd``: parse, configure logging, serve until SIGTERM/SIGINT.

Modules: ``flags`` (Go's flag package and etcd's ``pkg/flags``), ``flagdefs`` (the flag table), ``config``,
``configfile``, ``help`` (usage and version text), ``log``, ``main``.
"""
