"""Robustness suite: record a history of client operations and watches, then validate it offline.

- ``history``: the recorded format (plain dataclasses, JSON save/load) and the checkers' ``Result``.
- ``model``: etcd's KV semantics as a pure model, with a versioned store ("the state at revision r").
- ``writelog``: the authoritative write sequence W, built from every watch stream.
- ``linearizability``: the revision-guided checker (and ``check_wgl``, an exact search for cross-checks).
- ``watches``: the watch guarantees (ordered, unique, atomic, reliable, resumable, correct, progress).
- ``validate``: both checkers over one history; ``python -m robustness.validate history.json``.
- ``synth`` / ``mutate``: synthetic valid histories and the corruptions the tests feed the checkers.
"""
