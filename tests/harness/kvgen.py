"""Seeded generator of random KV operation sequences for the differential suite.

A sequence is a list of ``Step``s over a tiny key space under its own prefix
(``r/<seed>/``) so that keys collide often: puts over existing keys, deletes of
missing keys, transactions that touch the same key twice (an error), compares
that go both ways. Every choice is drawn from ``random.Random(seed)`` when the
sequence is built, never from a server's answer, so both servers receive exactly
the same requests.

Revision operands (Range.revision, Compact, min/max filters, CREATE/MOD compares)
are drawn as offsets from the sequence's base revision and turned into absolute
numbers per server when the step runs (``Step.make(base)``). Offsets range a
little past the number of writes so far, which produces "future revision" and,
after a Compact step, "has been compacted" errors on purpose.

Leases use fixed IDs derived from the seed (granted at the start with a long TTL),
because server-chosen IDs differ between servers. With ``with_leases=False`` (for a
server without the Lease service) nothing is granted or revoked:
puts carry lease 0, or now and then ``UNKNOWN_LEASE`` to exercise the "requested
lease not found" error, and LEASE compares use 0 or an id no key is attached to.

Sequences of different seeds can share one server pair when run one after the
other: each seed keeps to its own prefix, and the only global effect, a Compact,
happens at the same relative point on both servers, so a later seed's reads below
it fail the same way on both.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from harness import ops
from harness.kvclient import Step

Maker = Callable[[int], object]

VALUES = [b"", b"v0", b"v1", b"v2", b"zz", b"\x00\xff"]
LEASE_ID_BASE = 0x7E57_0000_0000
UNKNOWN_LEASE = 0x0BAD_1EA5E


class SeqGen:
    def __init__(self, seed: int, with_leases: bool = True) -> None:
        self.rnd = random.Random(seed)
        self.with_leases = with_leases
        self.prefix = f"r/{seed:04d}/".encode()
        # "b" and "b\x00" are adjacent keys; "d\xff" exercises prefix-end carry.
        self.keys = [self.prefix + k for k in (b"a", b"b", b"b\x00", b"c", b"d\xff", b"e")]
        self.leases = [LEASE_ID_BASE + seed * 4 + i for i in range(2)]
        self.writes = 0  # an upper bound of revisions consumed so far, for picking offsets
        # Inside a txn: {"from_key_delete", "ignore_put"} as generated so far (see gen_txn).
        self.txn_flags: set[str] | None = None

    # -- small random pieces ---------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rnd.random() < p

    def key(self) -> bytes:
        return b"" if self.chance(0.01) else self.rnd.choice(self.keys)

    def rel_rev(self) -> int:
        """An offset from the base revision, sometimes past the current one."""
        return self.rnd.randint(0, self.writes + 2)

    def key_range(self, allow_from_key: bool = True) -> tuple[bytes, bytes]:
        form = self.rnd.choice(["single", "single", "prefix", "span", "ns", "from"] if allow_from_key else
                               ["single", "single", "prefix", "span", "ns"])  # fmt: skip
        if form == "single":
            return self.key(), b""
        if form == "prefix":
            k = self.rnd.choice([b"b", b"d", b"d\xff", b"c"])
            return self.prefix + k, ops.prefix_end(self.prefix + k)
        if form == "span":
            a, b = self.rnd.choice(self.keys), self.rnd.choice(self.keys)
            return a, b  # may be empty or reversed: both are legal and return nothing
        if form == "ns":
            return self.prefix, ops.prefix_end(self.prefix)
        return self.rnd.choice(self.keys), b"\x00"  # from-key

    def lease(self) -> int:
        r = self.rnd.random()
        if r < 0.7:
            return 0
        if r < 0.97:
            lid = self.rnd.choice(self.leases)
            return lid if self.with_leases else 0  # nothing was granted: attach no lease
        return UNKNOWN_LEASE

    # -- request makers --------------------------------------------------------------

    def gen_put(self) -> Maker:
        kw: dict = {"key": self.key(), "value": self.rnd.choice(VALUES), "lease": self.lease()}
        kw["prev_kv"] = self.chance(0.4)
        if self.chance(0.06):
            kw["ignore_value"] = True
            if self.chance(0.7):
                kw["value"] = b""
        if self.chance(0.06):
            kw["ignore_lease"] = True
            if self.chance(0.7):
                kw["lease"] = 0
        if self.txn_flags is not None and (kw.get("ignore_value") or kw.get("ignore_lease")):
            if "from_key_delete" in self.txn_flags:
                kw.pop("ignore_value", None)
                kw.pop("ignore_lease", None)
            else:
                self.txn_flags.add("ignore_put")
        self.writes += 1
        req = ops.put(**kw)
        return lambda _base: req

    def gen_range(self) -> Maker:
        key, end = self.key_range()
        kw: dict = {"key": key, "range_end": end}
        rel: dict[str, int] = {}
        if self.chance(0.3):
            kw["limit"] = self.rnd.randint(1, 3)
        if self.chance(0.25):
            rel["revision"] = self.rel_rev()
        elif self.chance(0.05):
            kw["revision"] = -1  # any non-positive revision reads the latest
        if self.chance(0.35):
            kw["sort_order"] = self.rnd.choice(ops.SORT_ORDERS)
            kw["sort_target"] = self.rnd.choice(ops.SORT_TARGETS)
        kw["serializable"] = self.chance(0.2)
        kw["keys_only"] = self.chance(0.15)
        kw["count_only"] = self.chance(0.1)
        for f in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
            if self.chance(0.08):
                rel[f] = self.rel_rev()
        return lambda base: ops.rng(**kw, **{f: base + k for f, k in rel.items()})

    def gen_delete(self) -> Maker:
        key, end = self.key_range()
        if self.txn_flags is not None and end == b"\x00":
            if "ignore_put" in self.txn_flags:
                end = ops.prefix_end(key)
            else:
                self.txn_flags.add("from_key_delete")
        req = ops.delete(key, end, prev_kv=self.chance(0.5))
        self.writes += 1
        return lambda _base: req

    def gen_compare(self) -> Maker:
        target = self.rnd.choice(ops.COMPARE_TARGETS)
        result = self.rnd.choice(ops.COMPARE_RESULTS)
        key = self.key()
        end = b""
        if self.chance(0.2):
            key, end = self.key_range(allow_from_key=True)
        if target == "VERSION":
            v = self.rnd.randint(0, 3)
            return lambda _base: ops.cmp(key, target, result, v, end)
        if target in ("CREATE", "MOD"):
            k = self.rel_rev()
            absent = self.chance(0.2)  # operand 0 is the "key does not exist" idiom
            return lambda base: ops.cmp(key, target, result, 0 if absent else base + k, end)
        if target == "VALUE":
            v = self.rnd.choice(VALUES)
            return lambda _base: ops.cmp(key, target, result, v, end)
        lease = self.rnd.choice([0, *self.leases])  # never granted without leases: compares like any id
        return lambda _base: ops.cmp(key, target, result, lease, end)

    def gen_txn(self, depth: int = 0) -> Maker:
        """A txn, nested up to depth 2.

        Never both a from-key delete and an ignore_value/ignore_lease put in one txn: etcd 3.4
        leaves [key, "\\x00") out of its duplicate-key check, validates ignore_* puts against the
        store before the txn, and so, when the delete runs first and removes the key, panics in
        apply ("unexpected error during txn: etcdserver: key not found") on every restart.
        """
        if depth == 0:
            self.txn_flags = set()
            try:
                return self._gen_txn(0)
            finally:
                self.txn_flags = None
        return self._gen_txn(depth)

    def _gen_txn(self, depth: int) -> Maker:
        compares = [self.gen_compare() for _ in range(self.rnd.randint(0, 3))]
        branches = []
        for _ in range(2):
            steps = []
            for _ in range(self.rnd.randint(0, 4)):
                kind = self.rnd.choice(["put", "put", "range", "delete", "txn"] if depth < 2 else
                                       ["put", "put", "range", "delete"])  # fmt: skip
                if kind == "put":
                    steps.append(self.gen_put())
                elif kind == "range":
                    steps.append(self.gen_range())
                elif kind == "delete":
                    steps.append(self.gen_delete())
                else:
                    steps.append(self._gen_txn(depth + 1))
            branches.append(steps)
        success, failure = branches
        return lambda base: ops.txn([c(base) for c in compares], [s(base) for s in success], [f(base) for f in failure])

    def gen_compact(self) -> Maker:
        k = self.rel_rev()
        physical = self.chance(0.5)
        return lambda base: ops.compact(base + k, physical)

    # -- whole sequence ----------------------------------------------------------------

    def sequence(self) -> list[Step]:
        steps: list[Step] = []
        if self.with_leases:
            steps += [Step("LeaseGrant", (lambda req: lambda _b: req)(ops.lease_grant(lid)), f"grant {lid:x}")
                      for lid in self.leases]  # fmt: skip
        for _ in range(self.rnd.randint(10, 30)):
            r = self.rnd.random()
            if r < 0.30:
                steps.append(Step("Put", self.gen_put(), "put"))
            elif r < 0.55:
                steps.append(Step("Range", self.gen_range(), "range"))
            elif r < 0.67:
                steps.append(Step("DeleteRange", self.gen_delete(), "delete"))
            elif r < 0.93:
                steps.append(Step("Txn", self.gen_txn(), "txn"))
            elif r < 0.96:
                steps.append(Step("Compact", self.gen_compact(), "compact"))
            elif r < 0.98:
                lid = self.rnd.choice(self.leases)
                if self.with_leases:
                    self.writes += 1
                    req = ops.lease_revoke(lid)
                    steps.append(Step("LeaseRevoke", lambda _b, req=req: req, "revoke"))
                else:
                    steps.append(Step("Put", self.gen_put(), "put"))
            else:
                lid = self.rnd.choice(self.leases)
                if self.with_leases:
                    req = ops.lease_grant(lid)
                    steps.append(Step("LeaseGrant", lambda _b, req=req: req, "regrant"))
                else:
                    steps.append(Step("Range", self.gen_range(), "range"))
        # Finish with a full read of the namespace so any divergence left behind shows up.
        steps.append(Step("Range", lambda _b: ops.rng(self.prefix, ops.prefix_end(self.prefix)), "final read"))
        return steps


def sequence(seed: int, with_leases: bool = True) -> list[Step]:
    return SeqGen(seed, with_leases).sequence()
