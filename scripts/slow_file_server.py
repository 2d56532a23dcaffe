"""Serves one file over HTTP on 127.0.0.1 for the pull process tests.

Usage: slow_file_server.py FILE. Prints the port on the first line of stdout, then one line per
request ("GET range=<Range header or -> if-range=<If-Range header or ->"). Sends a strong ETag
(the file's sha256 prefix) and honours `Range: bytes=N-` with 206 when the request's `If-Range`
is absent or matches it (a mismatch gets the whole file, 200, as RFC 9110 says). The first
request without a Range header is throttled (1 KiB per 20 ms) so a test can kill the client
mid-download; later requests are served at full speed.
"""
import hashlib
import http.server
import sys
import threading
import time

data = open(sys.argv[1], "rb").read()
etag = '"%s"' % hashlib.sha256(data).hexdigest()[:16]
lock = threading.Lock()
state = {"throttled": False}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        with lock:
            print("GET range=%s if-range=%s" % (rng or "-", if_range or "-"), flush=True)
            throttle = rng is None and not state["throttled"]
            if throttle:
                state["throttled"] = True
        start = 0
        if rng and rng.startswith("bytes=") and (if_range is None or if_range == etag):
            start = int(rng[6:].split("-")[0] or 0)
        body = data[start:]
        if start > 0:
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if throttle:
                for i in range(0, len(body), 1024):
                    self.wfile.write(body[i:i + 1024])
                    self.wfile.flush()
                    time.sleep(0.02)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
