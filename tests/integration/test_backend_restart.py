"""Kill the backend under load: `autoglm serve --config` (llamacpp) must report it at once
(/readyz 503), restart it, and answer every request cleanly meanwhile — a completed response, a
503 JSON error, or a stream that ends with an error event and [DONE]. No request may hang.

Run through scripts/test-backend-restart.sh (it starts the server and sets the env vars).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

BASE = os.environ["AUTOGLM_BASE_URL"]          # http://127.0.0.1:PORT
SERVE_PID = int(os.environ["AUTOGLM_SERVE_PID"])
KEY = os.environ.get("AUTOGLM_API_KEY", "test-key")
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"), flush=True)
    if not cond:
        failures.append(name)


def child_pid():
    out = subprocess.run(["pgrep", "-P", str(SERVE_PID), "llama-server"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def readyz():
    try:
        with urllib.request.urlopen(BASE + "/readyz", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None


def one_request(stream):
    body = json.dumps({"model": "gemma3-test", "prompt": "Once upon a time", "max_tokens": 24,
                       "temperature": 0, "stream": stream}).encode()
    req = urllib.request.Request(BASE + "/v1/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
    except urllib.error.HTTPError as e:
        payload = e.read().decode()
        try:
            err = json.loads(payload)["error"]
        except Exception:
            return ("bad", f"HTTP {e.code} non-OpenAI body: {payload[:200]}")
        return ("503", err.get("code")) if e.code == 503 else ("bad", f"HTTP {e.code}: {payload[:200]}")
    except Exception as e:  # a timeout here is a hang
        return ("bad", f"{type(e).__name__}: {e}")
    if not stream:
        try:
            return ("ok", json.loads(text)["choices"][0]["text"]) 
        except Exception:
            return ("bad", f"200 with a body that is not a completion: {text[:200]}")
    events = [l[6:] for l in text.split("\n") if l.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        return ("bad", f"stream did not end with [DONE]: {text[-200:]}")
    errors = [e for e in events[:-1] if '"error"' in e]
    return ("stream-error", json.loads(errors[0])["error"]["code"]) if errors else ("ok", "stream")


results, lock, stop = [], threading.Lock(), threading.Event()


def worker(i):
    n = 0
    while not stop.is_set():
        r = one_request(stream=(i + n) % 2 == 0)
        with lock:
            results.append((time.monotonic(), r))
        n += 1


check("ready before the kill", readyz() == 200)
old = child_pid()
check("llama-server is a child of autoglm serve", old is not None)
threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
for t in threads:
    t.start()
time.sleep(2.0)
killed_at = time.monotonic()
os.kill(old, signal.SIGKILL)
seen_503 = None
while time.monotonic() - killed_at < 10:
    if readyz() == 503:
        seen_503 = time.monotonic() - killed_at
        break
    time.sleep(0.02)
check("/readyz answers 503 after the backend is killed", seen_503 is not None)
if seen_503 is not None:
    print(f"measured: /readyz went 503 {seen_503 * 1000:.0f} ms after SIGKILL", flush=True)
restarted = None
while time.monotonic() - killed_at < 120:
    if readyz() == 200:
        restarted = time.monotonic() - killed_at
        break
    time.sleep(0.05)
check("the backend is restarted and ready again", restarted is not None)
new = child_pid()
check("a new llama-server process", new is not None and new != old, (old, new))
if restarted is not None:
    print(f"measured: ready again {restarted:.1f} s after SIGKILL", flush=True)
time.sleep(2.0)
stop.set()
for t in threads:
    t.join(timeout=90)
check("no worker hangs", not any(t.is_alive() for t in threads))
bad = [r for _, r in results if r[0] == "bad"]
check("every request ended cleanly (completed, 503, or a stream error event)", not bad, bad[:5])
after = [r for ts, r in results if restarted is not None and ts > killed_at + restarted and r[0] == "ok"]
check("requests complete after the restart", len(after) > 0, len(after))
kinds = {}
for _, r in results:
    kinds[r[0]] = kinds.get(r[0], 0) + 1
print(f"outcomes: {kinds}", flush=True)
print(f"{len(failures)} failed" if failures else "all passed")
sys.exit(1 if failures else 0)
