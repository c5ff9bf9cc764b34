"""Independent OTLP decoder for the Rust tests (tests/otlp.rs).

Decodes with the official `opentelemetry-proto` package:
  otlp_check.py proto FILE...   each FILE one OTLP/HTTP request body
                                (ExportTraceServiceRequest, protobuf)
  otlp_check.py json FILE       OTLP/JSON lines (one TracesData per line)
and prints one JSON object of facts the Rust test compares with
`ferret analyze`.

protobuf's JSON parser reads `bytes` fields as base64, while OTLP/JSON
writes trace and span ids as hex: the ids are converted here first.
"""

import base64
import collections
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status, TracesData


def hex_to_b64(obj):
    for rs in obj.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in sp and sp[k]:
                        sp[k] = base64.b64encode(bytes.fromhex(sp[k])).decode()
    return obj


def messages(mode, files):
    if mode == "proto":
        for f in files:
            m = ExportTraceServiceRequest()
            with open(f, "rb") as fh:
                m.ParseFromString(fh.read())
            yield m
    else:
        with open(files[0], "rb") as fh:
            for line in fh:
                if len(line) > 4 * 1024 * 1024:
                    raise SystemExit("line longer than 4 MiB")
                m = TracesData()
                json_format.ParseDict(hex_to_b64(json.loads(line)), m)
                yield m


def main():
    mode, files = sys.argv[1], sys.argv[2:]
    by_name = collections.Counter()
    errors = collections.Counter()
    ids, parents, traces = [], [], []
    bad_trace = bad_span = bad_parent_len = bad_kind = bad_time = 0
    attr_keys, services, messages_seen = set(), set(), set()
    attr_types = {}
    for m in messages(mode, files):
        for rs in m.resource_spans:
            res = {a.key: a.value for a in rs.resource.attributes}
            services.add(res["service.name"].string_value)
            if "process.pid" in res:
                assert res["process.pid"].int_value > 0
            for ss in rs.scope_spans:
                assert ss.scope.name == "ferret"
                for sp in ss.spans:
                    by_name[sp.name] += 1
                    bad_trace += len(sp.trace_id) != 16
                    bad_span += len(sp.span_id) != 8
                    bad_parent_len += len(sp.parent_span_id) not in (0, 8)
                    bad_kind += sp.kind != 1
                    bad_time += sp.end_time_unix_nano < sp.start_time_unix_nano
                    ids.append(sp.span_id)
                    traces.append(sp.trace_id)
                    if sp.parent_span_id:
                        parents.append(sp.parent_span_id)
                    if sp.status.code == Status.STATUS_CODE_ERROR:
                        errors[sp.name] += 1
                        messages_seen.add(sp.status.message)
                    for a in sp.attributes:
                        attr_keys.add(a.key)
                        attr_types[a.key] = a.value.WhichOneof("value")
    idset = set(ids)
    print(
        json.dumps(
            {
                "spans": len(ids),
                "distinct_span_ids": len(idset),
                "distinct_traces": len(set(traces)),
                "by_name": by_name,
                "errors_by_name": errors,
                "bad_trace_id_len": bad_trace,
                "bad_span_id_len": bad_span,
                "bad_parent_id_len": bad_parent_len,
                "bad_kind": bad_kind,
                "end_before_start": bad_time,
                "missing_parents": sum(1 for p in parents if p not in idset),
                "attribute_keys": sorted(attr_keys),
                "attribute_types": attr_types,
                "services": sorted(services),
                "status_messages": sorted(messages_seen),
            }
        )
    )


main()
