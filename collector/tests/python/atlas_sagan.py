"""Parses a sixmap Atlas export (one JSON result per line) with RIPE NCC's ripe-atlas-sagan
and prints one JSON summary per line, for collector/tests/export.rs to compare with ours.

Successful results are parsed with on_error=FAIL and on_malformation=FAIL, so any error or
malformation raises. Results that are failures in Atlas terms (a DNS `error`, an HTTP
response with `err` and no `res`, ICMP errors in traceroute hops) are parsed with WARN and
must come out flagged as errors with our message. Exit status 2 on any unexpected outcome.
"""
import json
import sys

from ripe.atlas.sagan import Result
from ripe.atlas.sagan.base import ParsingDict

FAIL = ParsingDict.ACTION_FAIL
WARN = ParsingDict.ACTION_WARN


def dns_rcode(raw):
    import base64
    return base64.b64decode(raw["result"]["abuf"])[3] & 0x0F


def atlas_failure(raw):
    if raw["type"] == "dns":
        # sagan reports any rcode but NOERROR as an error of the result.
        return "error" in raw or dns_rcode(raw) != 0
    if raw["type"] == "http":
        return any("err" in r for r in raw["result"])
    if raw["type"] == "traceroute":
        return any("err" in p for h in raw["result"] for p in h["result"])
    return False


def summary(raw):
    failure = atlas_failure(raw)
    mode = WARN if failure else FAIL
    parsed = Result.get(raw, on_error=mode, on_malformation=mode)
    out = {
        "key": raw["sixmap_key"],
        "type": parsed.type,
        "class": type(parsed).__name__,
        "is_error": parsed.is_error,
        "is_malformed": parsed.is_malformed,
        "probe_id": parsed.probe_id,
        "measurement_id": parsed.measurement_id,
        "created": int(parsed.created.timestamp()),
    }
    if parsed.type == "ping":
        out.update(rtt_min=parsed.rtt_min, rtt_max=parsed.rtt_max,
                   sent=parsed.packets_sent, received=parsed.packets_received,
                   destination=parsed.destination_address)
    elif parsed.type == "traceroute":
        out.update(total_hops=parsed.total_hops, ip_path=parsed.ip_path,
                   destination_ip_responded=parsed.destination_ip_responded,
                   last_hop_errors=parsed.last_hop_errors)
    elif parsed.type == "dns":
        if parsed.responses and parsed.responses[0].abuf:
            abuf = parsed.responses[0].abuf
            out.update(
                rcode=abuf.header.return_code,
                answers=[{"type": a.type, "name": a.name, "ttl": a.ttl,
                          "data": getattr(a, "address", None) or getattr(a, "target", None)}
                         for a in abuf.answers],
                rt=parsed.responses[0].response_time,
                abuf_malformed=abuf.is_malformed, abuf_error=abuf.is_error)
        else:
            out.update(error_message=parsed.error_message)
    elif parsed.type == "http":
        r = parsed.responses[0]
        out.update(code=r.code, rt=r.response_time, body_size=r.body_size,
                   response_error=r.is_error, response_error_message=r.error_message)
    return out


def main():
    ok = True
    for number, line in enumerate(open(sys.argv[1]), 1):
        raw = json.loads(line)
        try:
            print(json.dumps(summary(raw)))
        except Exception as e:  # any sagan exception is a failure of our export
            print(f"line {number} ({raw.get('type')}): sagan raised {type(e).__name__}: {e}",
                  file=sys.stderr)
            ok = False
    sys.exit(0 if ok else 2)


main()
