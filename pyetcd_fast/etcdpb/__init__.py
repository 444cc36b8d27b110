"""Generated protobuf and gRPC modules for etcd 3.4's wire API.

The subpackages (mvccpb, authpb, etcdserverpb, v3electionpb, v3lockpb) are
produced from proto/ by ``python tools/gen_pb.py`` and are not checked in.
Names and field numbers match etcd 3.4 exactly, so these modules interoperate
with real etcd and etcdctl. Import them as, e.g.::

    from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
"""
