"""The client's exceptions: etcd's errors by kind, all subclasses of ``EtcdError``.

Contract: a call that etcd refuses raises the class named for etcd's error (``Compacted`` for "required
revision has been compacted", ``LeaseNotFound``, ``PermissionDenied``, ...), with etcd's message as its
text; ``ConnectionFailed`` when no endpoint could be reached, ``Timeout`` when the call's deadline passed,
``Unavailable`` (``NoLeader``) when the server could not serve it now. Any other refusal is ``EtcdError``.
They are raised by the native client, so catching them costs nothing on the success path.
"""

from pyetcd_fast._native import (
    AuthFailed,
    Compacted,
    ConnectionFailed,
    EtcdError,
    FutureRevision,
    InvalidAuthToken,
    LeaseNotFound,
    NoLeader,
    PermissionDenied,
    RequestTooLarge,
    Timeout,
    Unavailable,
)

__all__ = [
    "AuthFailed",
    "Compacted",
    "ConnectionFailed",
    "EtcdError",
    "FutureRevision",
    "InvalidAuthToken",
    "LeaseNotFound",
    "NoLeader",
    "PermissionDenied",
    "RequestTooLarge",
    "Timeout",
    "Unavailable",
]
