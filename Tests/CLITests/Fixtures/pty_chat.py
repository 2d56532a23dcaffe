"""Drives `autoglm chat` under a pseudo-terminal like a person would, and prints what it saw
as JSON for the Swift test to assert on. Usage: pty_chat.py BINARY MODEL"""
import json, os, pty, re, select, signal, sys, time

binary, model = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(binary, [binary, "chat", "--model", model, "--temp", "0", "-n", "48", "--ctx", "1024",
                      "--threads", "2", "--verbose"])

transcript = b""

def read_until(pattern, timeout=300):
    """Reads until `pattern` (bytes regex) matches the text read since the call started."""
    global transcript
    buf = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if fd in r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            buf += data
            transcript += data
            if re.search(pattern, buf):
                return buf.decode("utf-8", "replace")
    raise SystemExit(json.dumps({"error": f"timed out waiting for {pattern!r}",
                                 "transcript": transcript.decode("utf-8", "replace")}))

def send(s):
    os.write(fd, s.encode())

def stats(text):
    m = re.search(r"\[reused (\d+) cached, prefilled (\d+), generated (\d+) tokens; (\w+)\]", text)
    return None if not m else dict(reused=int(m[1]), prefilled=int(m[2]), generated=int(m[3]), finish=m[4])

out = {}
read_until(rb">>> ")
send("What is 2+2? Answer briefly.\n")
t1 = read_until(rb"\]\r?\n>>> ")
out["turn1"] = stats(t1)
send("And 3+3?\n")
t2 = read_until(rb"\]\r?\n>>> ")
out["turn2"] = stats(t2)
send('"""\nWrite the numbers from 1 to 300,\nseparated by commas.\n"""\n')
# Interrupt as soon as the answer starts streaming.
read_until(rb"\d+,")
os.kill(pid, signal.SIGINT)
t3 = read_until(rb"\]\r?\n>>> ")
out["stopped"] = "(stopped)" in t3
out["turn3"] = stats(t3)
send("/system Answer in one word.\n")
out["system_ack"] = "(system prompt set)" in read_until(rb">>> ")
send("/reset\n")
out["reset_ack"] = "(conversation cleared)" in read_until(rb">>> ")
send("Hi\n")
out["turn4"] = stats(read_until(rb"\]\r?\n>>> "))
send("\x04")  # Ctrl-D at an empty prompt: end of input
deadline = time.time() + 60
status = None
while time.time() < deadline:
    wpid, st = os.waitpid(pid, os.WNOHANG)
    if wpid == pid:
        status = os.waitstatus_to_exitcode(st)
        break
    try:
        select.select([fd], [], [], 0.2)
        os.read(fd, 4096)
    except OSError:
        pass
out["exit_status"] = status
out["transcript"] = transcript.decode("utf-8", "replace")
print(json.dumps(out))
