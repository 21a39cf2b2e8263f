"""A researcher's standard gRPC client reaches the collector's QueryService.

grpcio (Google's Python gRPC) with nothing but the collector's CA file: no name override, so
the channel checks the server certificate against the name it dialled (`localhost`, `[::1]`).
The stubs are generated here, at run time, with grpcio-tools from the repository's .proto
files, exactly as a researcher would from the published files.

Usage: query_grpcio.py PROTO_DIR CA_FILE TARGET TOKEN
Prints one JSON line: {"results": N, "probes": [...], "countries": [...]} and exits 0, or
{"code": "UNAVAILABLE", "details": "..."} and exits 1 when a call fails.
"""

import importlib
import json
import os
import sys
import tempfile

import grpc
import grpc_tools
from grpc_tools import protoc


def stubs(proto_dir):
    out = tempfile.mkdtemp(prefix="sixmap-grpcio-")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = [os.path.join(proto_dir, "sixmap", "v1", f) for f in ("measurement.proto", "query.proto")]
    status = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *files]
    )
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    sys.path.insert(0, out)
    return (
        importlib.import_module("sixmap.v1.query_pb2"),
        importlib.import_module("sixmap.v1.query_pb2_grpc"),
    )


def main():
    proto_dir, ca_file, target, token = sys.argv[1:5]
    query_pb2, query_grpc = stubs(proto_dir)
    with open(ca_file, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.secure_channel(target, credentials) as channel:
        service = query_grpc.QueryServiceStub(channel)
        try:
            results = list(
                service.StreamResults(query_pb2.ResultQuery(limit=1000), metadata=metadata, timeout=30)
            )
            reply = service.Aggregate(
                query_pb2.AggregateQuery(group_by="country", side="probe"), metadata=metadata, timeout=30
            )
        except grpc.RpcError as e:
            print(json.dumps({"code": e.code().name, "details": e.details()}))
            return 1
    print(
        json.dumps(
            {
                "results": len(results),
                "probes": sorted({r.result.key.probe_id for r in results}),
                "countries": sorted(row.country for row in reply.rows),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
