#!/usr/bin/env python3
"""A small OpenAI-compatible backend with fault injection, for the fleet's tests.

Listens on --host (default 127.0.0.1) port PORT (0: the kernel picks; the address is printed as
"listening on http://HOST:PORT", the way llama-server announces it) and answers
GET /health, GET /v1/models, POST /v1/chat/completions and /v1/completions (JSON or SSE).
Each answer has --tokens tokens "tok0 tok1 ...", one every --token-ms milliseconds.

Faults: --error-rate R answers HTTP 500 on that share of completion requests (deterministic:
every request whose running count crosses the next multiple of 1/R); --slow F multiplies every
delay by F. --version V is echoed in each answer's "system_fingerprint", so tests see which
replica set served a request.
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--tokens", type=int, default=8)
ap.add_argument("--token-ms", type=float, default=5.0)
ap.add_argument("--error-rate", type=float, default=0.0)
ap.add_argument("--slow", type=float, default=1.0)
ap.add_argument("--version", default="v1")
ap.add_argument("--model", default="fake-model")
args = ap.parse_args()

lock = threading.Lock()
count = {"n": 0, "errors": 0}


def should_fail():
    if args.error_rate <= 0:
        return False
    with lock:
        count["n"] += 1
        want = int(count["n"] * args.error_rate)
        if want > count["errors"]:
            count["errors"] += 1
            return True
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self.send_json(200, {"status": "ok"})
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": args.model, "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            self.send_json(400, {"error": {"message": "bad json"}})
            return
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self.send_json(404, {"error": {"message": "not found"}})
            return
        if should_fail():
            self.send_json(500, {"error": {"message": "injected failure", "type": "server_error"}})
            return
        tokens = min(int(req.get("max_tokens") or args.tokens), args.tokens)
        delay = args.token_ms * args.slow / 1000.0
        usage = {"prompt_tokens": 4, "completion_tokens": tokens, "total_tokens": 4 + tokens}
        base = {"id": "x", "created": int(time.time()), "model": args.model, "system_fingerprint": args.version}
        if not req.get("stream"):
            time.sleep(delay * tokens)
            text = " ".join(f"tok{i}" for i in range(tokens))
            choice = {"index": 0, "finish_reason": "length"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            self.send_json(200, dict(base, object="chat.completion" if chat else "text_completion",
                                     choices=[choice], usage=usage))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        obj = "chat.completion.chunk" if chat else "text_completion"
        try:
            for i in range(tokens):
                time.sleep(delay)
                piece = f"tok{i} "
                choice = {"index": 0, "finish_reason": None}
                if chat:
                    choice["delta"] = {"content": piece}
                else:
                    choice["text"] = piece
                self.wfile.write(f"data: {json.dumps(dict(base, object=obj, choices=[choice]))}\n\n".encode())
                self.wfile.flush()
            end = dict(base, object=obj, choices=[{"index": 0, "finish_reason": "length",
                                                   **({"delta": {}} if chat else {"text": ""})}])
            self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
            opts = req.get("stream_options") or {}
            if opts.get("include_usage"):
                self.wfile.write(f"data: {json.dumps(dict(base, object=obj, choices=[], usage=usage))}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


server = ThreadingHTTPServer((args.host, args.port), Handler)
server.daemon_threads = True
print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
sys.exit(0)
