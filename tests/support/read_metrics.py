"""Reads a node's /metrics with the Prometheus Python client's OpenMetrics parser (an
independent reader) and prints every sample as JSON: [[name, labels, value], ...]."""

import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        kind = r.headers.get("Content-Type", "")
        text = r.read().decode("utf-8")
    assert kind.startswith("application/openmetrics-text"), kind
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append([s.name, s.labels, s.value])
    print(json.dumps({"samples": out, "text": text}, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
