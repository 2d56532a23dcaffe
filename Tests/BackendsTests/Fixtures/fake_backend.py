"""A stand-in backend server for the supervision tests: `--port N` like llama-server; /health
answers 200, /metrics answers llama.cpp-named series."""
import http.server
import sys

port = int(sys.argv[sys.argv.index("--port") + 1])


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"llamacpp:requests_processing 2\nllamacpp:requests_deferred 5\n" if self.path == "/metrics" else b"{}"
        self.send_response(200 if self.path in ("/health", "/metrics") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
