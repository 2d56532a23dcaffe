#!/usr/bin/env python3
"""A small custom-metrics adapter for the test bed (stdlib + PyYAML, which the kubernetes client
brings): serves custom.metrics.k8s.io/v1beta1 behind the kube-apiserver's aggregation layer
(registered by an APIService), so the HPA controller of the test bed can read the Pods metrics
`autoglm deploy render` points its HPA at.

It computes each pod's value from the *rendered* prometheus-adapter rules: every ConfigMap named
`*-adapter-rules` in the pod's namespace holds the rules (`config.yaml`, the adapter's `rules:`
format); a rule's `name.matches`/`name.as` give the metric name, its `seriesQuery` the series and
its `metricsQuery` the PromQL meaning. The three shapes `deploy render` writes are understood:

  sum(<<.Series>>{...}) by (...)                                      a gauge, summed per pod
  sum(rate(<<.Series>>{...}[W])) by (...)                              a counter's per-second rate over W
  histogram_quantile(Q, sum(rate(<<.Series>>{...}[W])) by (le, ...))   a quantile of a histogram's buckets over W

A pod's series come from its /metrics, read through the API server's pod proxy
(/api/v1/namespaces/NS/pods/NAME:PORT/proxy/metrics, PORT: the container port named `http`),
scraped each time the metric is asked for (the HPA asks every sync period) and kept for the
rate window. A pod-independent source for tests: a ConfigMap `autoglm-test-metrics` in the
namespace whose `metrics` key holds a Prometheus text exposition every pod is taken to export.

Requests must carry the API server's front-proxy client certificate (--client-ca).
"""
import argparse
import base64
import json
import math
import re
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

GROUP = "custom.metrics.k8s.io"
VERSION = "v1beta1"
OVERRIDE_CONFIGMAP = "autoglm-test-metrics"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


class Kube:
    """The API server, with the kubeconfig's token and CA."""

    def __init__(self, kubeconfig):
        with open(kubeconfig) as f:
            kc = yaml.safe_load(f)
        ctx = next(c["context"] for c in kc["contexts"] if c["name"] == kc["current-context"])
        cluster = next(c["cluster"] for c in kc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in kc["users"] if u["name"] == ctx["user"])
        self.server = cluster["server"].rstrip("/")
        self.token = user["token"]
        self.tls = ssl.create_default_context(cafile=cluster["certificate-authority"])

    def get(self, path, raw=False):
        req = urllib.request.Request(self.server + path, headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, context=self.tls, timeout=5) as r:
            body = r.read()
        return body.decode() if raw else json.loads(body)


def parse_exposition(text):
    """[(name, labels dict, value)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        try:
            v = float(m.group(4))
        except ValueError:
            continue
        out.append((m.group(1), labels, v))
    return out


class Rule:
    """One prometheus-adapter rule, reduced to what it computes."""

    SHAPES = [
        ("gauge", re.compile(r"^sum\(<<\.Series>>\{<<\.LabelMatchers>>\}\) by \(<<\.GroupBy>>\)$")),
        ("rate", re.compile(r"^sum\(rate\(<<\.Series>>\{<<\.LabelMatchers>>\}\[(\w+)\]\)\) by \(<<\.GroupBy>>\)$")),
        ("quantile", re.compile(r"^histogram_quantile\(([0-9.]+), sum\(rate\(<<\.Series>>\{<<\.LabelMatchers>>\}\[(\w+)\]\)\) by \(le, <<\.GroupBy>>\)\)$")),
    ]

    def __init__(self, rule):
        self.series = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)", rule["seriesQuery"]).group(1)
        name = rule.get("name") or {}
        matches = re.compile(name.get("matches") or "^(.*)$")
        as_ = (name.get("as") or "${0}").replace("${", "\\g<").replace("}", ">")
        m = matches.search(self.series)
        if not m:
            raise ValueError(f"name.matches {matches.pattern} does not match the series {self.series}")
        self.metric = m.expand(as_) if as_ != "\\g<0>" else m.group(0)
        q = rule["metricsQuery"].strip()
        for kind, pattern in self.SHAPES:
            mm = pattern.match(q)
            if mm:
                self.kind = kind
                if kind == "rate":
                    self.window = duration(mm.group(1))
                elif kind == "quantile":
                    self.q, self.window = float(mm.group(1)), duration(mm.group(2))
                break
        else:
            raise ValueError(f"metricsQuery {q!r} is not a shape this test adapter understands")


def duration(text):
    m = re.match(r"^(\d+)([smh])$", text)
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


def histogram_quantile(q, buckets):
    """PromQL's histogram_quantile over [(le, cumulative count)]: linear within the bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None  # no observations in the window: PromQL gives NaN, the adapter drops the pod
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == math.inf:
                return prev_le  # the highest finite bound
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return None


class Adapter:
    def __init__(self, kube):
        self.kube = kube
        self.history = {}  # (namespace, pod, series, labels) -> [(t, value)]
        self.lock = threading.Lock()

    def rules(self, ns):
        out = {}
        for cm in self.kube.get(f"/api/v1/namespaces/{ns}/configmaps")["items"]:
            if not cm["metadata"]["name"].endswith("-adapter-rules"):
                continue
            cfg = yaml.safe_load((cm.get("data") or {}).get("config.yaml") or "{}") or {}
            for r in cfg.get("rules") or []:
                rule = Rule(r)
                out[rule.metric] = rule
        return out

    def all_metric_names(self):
        names = set()
        for ns in self.kube.get("/api/v1/namespaces")["items"]:
            try:
                names.update(self.rules(ns["metadata"]["name"]))
            except Exception as e:  # a bad rule elsewhere must not hide the others
                log("rules of", ns["metadata"]["name"], ":", e)
        return sorted(names)

    def scrape(self, ns, pod):
        """The pod's /metrics text (or the namespace's test override)."""
        try:
            cm = self.kube.get(f"/api/v1/namespaces/{ns}/configmaps/{OVERRIDE_CONFIGMAP}")
            return (cm.get("data") or {}).get("metrics", "")
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        port = None
        for c in pod["spec"]["containers"]:
            for p in c.get("ports") or []:
                if p.get("name") == "http":
                    port = p["containerPort"]
        name = pod["metadata"]["name"]
        target = f"{name}:{port}" if port else name
        return self.kube.get(f"/api/v1/namespaces/{ns}/pods/{target}/proxy/metrics", raw=True)

    def value(self, ns, pod, rule, now):
        samples = [(n, l, v) for n, l, v in parse_exposition(self.scrape(ns, pod)) if n == rule.series]
        if rule.kind == "gauge":
            return sum(v for _, _, v in samples) if samples else None
        # rate / quantile: per series (label set), the increase over the window from the kept samples.
        pod_name = pod["metadata"]["name"]
        rates = {}
        with self.lock:
            for _, labels, v in samples:
                key = (ns, pod_name, rule.series, tuple(sorted(labels.items())))
                h = self.history.setdefault(key, [])
                h.append((now, v))
                while h and h[0][0] < now - rule.window:
                    h.pop(0)
                if len(h) < 2 or h[-1][0] <= h[0][0]:
                    continue
                # counter resets: sum the increases, restarting from 0 after a drop
                inc = 0.0
                for (_, a), (_, b) in zip(h, h[1:]):
                    inc += b - a if b >= a else b
                rates[key[3]] = inc / (h[-1][0] - h[0][0])
        if not rates:
            return None
        if rule.kind == "rate":
            return sum(rates.values())
        by_le = {}
        for labels, r in rates.items():
            le = dict(labels).get("le")
            if le is None:
                continue
            le = math.inf if le in ("+Inf", "Inf") else float(le)
            by_le[le] = by_le.get(le, 0.0) + r
        return histogram_quantile(rule.q, list(by_le.items()))


def quantity(v):
    return f"{int(round(v * 1000))}m"


class Handler(BaseHTTPRequestHandler):
    adapter = None
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def status(self, code, reason, message):
        self.send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message, "reason": reason, "code": code})

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = urllib.parse.parse_qs(url.query)
        try:
            if parts in (["apis", GROUP], ["apis"]):
                gv = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
                group = {"name": GROUP, "versions": [gv], "preferredVersion": gv}
                if parts == ["apis"]:
                    return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
                return self.send(200, dict(kind="APIGroup", apiVersion="v1", **group))
            if parts == ["apis", GROUP, VERSION]:
                resources = [{"name": f"pods/{m}", "singularName": "", "namespaced": True, "kind": "MetricValueList",
                              "verbs": ["get"]} for m in self.adapter.all_metric_names()]
                return self.send(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                       "groupVersion": f"{GROUP}/{VERSION}", "resources": resources})
            # /apis/GROUP/VERSION/namespaces/NS/pods/NAME|*/METRIC
            if len(parts) == 8 and parts[:3] == ["apis", GROUP, VERSION] and parts[3] == "namespaces" and parts[5] == "pods":
                return self.pods_metric(parts[4], urllib.parse.unquote(parts[6]), urllib.parse.unquote(parts[7]),
                                        query.get("labelSelector", [""])[0])
            self.status(404, "NotFound", f"{url.path} is not served by this adapter")
        except Exception as e:
            log("error on", self.path, ":", repr(e))
            self.status(500, "InternalError", f"{e}")

    def pods_metric(self, ns, pod_name, metric, selector):
        rule = self.adapter.rules(ns).get(metric)
        if rule is None:
            return self.status(404, "NotFound", f"the custom metric {metric} is not defined by any *-adapter-rules ConfigMap in namespace {ns}")
        q = "?labelSelector=" + urllib.parse.quote(selector) if selector else ""
        pods = self.adapter.kube.get(f"/api/v1/namespaces/{ns}/pods{q}")["items"]
        if pod_name != "*":
            pods = [p for p in pods if p["metadata"]["name"] == pod_name]
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        items = []
        for p in pods:
            if p.get("status", {}).get("phase") != "Running" or p["metadata"].get("deletionTimestamp"):
                continue
            try:
                v = self.adapter.value(ns, p, rule, now)
            except Exception as e:
                log("pod", p["metadata"]["name"], metric, ":", repr(e))
                continue
            if v is None or math.isnan(v):
                continue
            items.append({"describedObject": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"], "apiVersion": "/v1"},
                          "metricName": metric, "timestamp": stamp, "value": quantity(v)})
        log(f"{ns} {metric}: " + ", ".join(f"{i['describedObject']['name']}={i['value']}" for i in items))
        self.send(200, {"kind": "MetricValueList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {}, "items": items})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="HOST:PORT")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca", required=True, help="the front-proxy CA the API server's client certificate is signed by")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    Handler.adapter = Adapter(Kube(a.kubeconfig))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(a.cert, a.key)
    tls.load_verify_locations(a.client_ca)
    tls.verify_mode = ssl.CERT_REQUIRED
    srv = ThreadingHTTPServer((host, int(port)), Handler)
    srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    log("serving", GROUP, VERSION, "on", a.listen)
    srv.serve_forever()


if __name__ == "__main__":
    main()
