#!/usr/bin/env python3
"""A kubelet stand-in for the loopback test control plane whose pods really run, as local processes.

- Node: registers one Ready node (large allocatable, InternalIP = the bridge address) and heartbeats it.
- Network: one Linux bridge ($KUBELET_BRIDGE, default agl0, address .1 of $KUBELET_POD_CIDR, default
  10.88.0.0/24); per pod a network namespace "<bridge>-<pod uid>" with a veth pair onto the bridge,
  a pod IP from the CIDR, lo up and a default route via the bridge. The host (so kube-apiserver's
  pods/proxy and services/proxy) reaches pods through the bridge. status.podIP/podIPs/hostIP are
  reported, so the endpoints controller fills Service endpoints from Ready pods.
- Containers: init containers in order (each must exit 0), then the main containers, each as a
  process tree in the pod's network namespace and in its own mount namespace (ip netns exec +
  unshare -m) where every volumeMount shows its volume: emptyDir (per-pod dir shared by the pod's
  containers), configMap and secret (files per key, `items` respected, read from the API when the
  pod starts), hostPath (bind). Mount points missing on the host (e.g. /models, /etc/autoglm) are
  created as empty directories and removed again when the kubelet stops. env (value with $(VAR),
  secretKeyRef/configMapKeyRef with optional, fieldRef), envFrom and workingDir are honoured.
  stdout/stderr go to $KUBELET_RUN_DIR/logs/<namespace>_<pod>_<uid>/<container>.log (kept after the
  pod is gone; failure messages name the file). securityContext (runAsUser etc.) is not applied:
  processes run as root, so they can read the host's model files.
- Images: an image whose repository name contains "autoglm" (any tag) is the project's image: its
  entrypoint "autoglm" runs $AUTOGLM_BIN, "llama-server" / /usr/local/bin/llama-server (also as an
  env value) become $AUTOGLM_LLAMA_SERVER when set; other commands run from the host. Both variables
  are read when a container starts, so the binary may be built after the kubelet started. A tag
  matching :(bad|broken|fail) or any other repository cannot be "pulled": the container waits with
  ErrImagePull, then ImagePullBackOff, retried with back-off, as a real kubelet reports.
- restartPolicy: exited containers restart with back-off (10 s doubling to 300 s, $KUBELET_BACKOFF_SECONDS
  for the base): restartCount, lastState.terminated and waiting CrashLoopBackOff are reported; a failed
  init container is retried the same way (Init:CrashLoopBackOff).
- Probes: httpGet, tcpSocket and exec startup/readiness/liveness probes with initialDelaySeconds,
  periodSeconds, timeoutSeconds, failureThreshold, successThreshold. Readiness sets the container's
  ready flag and the pod's Ready/ContainersReady conditions, liveness (and startup) failure kills
  and restarts the container, the startup probe gates the other two.
- Deletion: a pod with deletionTimestamp gets SIGTERM to each container's process group, SIGKILL
  after its grace period, its network torn down, then it is deleted with grace 0.
- Stop (SIGTERM/SIGINT): every pod process is killed, every pod netns/veth, the bridge and the
  mount-point stubs are removed. `kubelet.py --cleanup` does the same for a kubelet that died.
Every container process carries AUTOGLM_TESTBED_POD_UID=<pod uid> (tests look for leftover
processes with it) and AUTOGLM_TESTBED_CONTAINER=<uid>/<container>/<start> in its environment: a
stopped container's processes are found by it even when they left its process group. The binaries
are run through hard links (or copies) under $KUBELET_RUN_DIR/bin, so a pod volume mounted over
their directory (an emptyDir on /tmp) does not hide them. Needs root and iproute2 (`ip`), util-linux (`unshare`, `nsenter`).

Environment: KUBECONFIG (the test API server), KUBELET_NODE_NAME (testbed-node-1), KUBELET_BRIDGE,
KUBELET_POD_CIDR, KUBELET_RUN_DIR (./kubelet-run), KUBELET_BACKOFF_SECONDS (10), KUBELET_POLL (0.5),
KUBELET_STOP_GRACE (seconds pods get on kubelet stop, 3), AUTOGLM_BIN, AUTOGLM_LLAMA_SERVER,
FAIL_IMAGE_RE (the regex of images that cannot be pulled).
"""
import base64, concurrent.futures, datetime, http.client, ipaddress, json, os, re, shlex, shutil, signal
import socket, ssl, subprocess, sys, threading, time, traceback

NODE = os.environ.get("KUBELET_NODE_NAME", "testbed-node-1")
BRIDGE = os.environ.get("KUBELET_BRIDGE", "agl0")
CIDR = ipaddress.ip_network(os.environ.get("KUBELET_POD_CIDR", "10.88.0.0/24"))
RUN_DIR = os.path.abspath(os.environ.get("KUBELET_RUN_DIR", "kubelet-run"))
BACKOFF = float(os.environ.get("KUBELET_BACKOFF_SECONDS", "10"))
BACKOFF_MAX = 300.0
POLL = float(os.environ.get("KUBELET_POLL", "0.5"))
STOP_GRACE = float(os.environ.get("KUBELET_STOP_GRACE", "3"))
FAIL_IMAGE_RE = re.compile(os.environ.get("FAIL_IMAGE_RE", r":(bad|broken|fail)[^/]*$"))
MARKER = "AUTOGLM_TESTBED_POD_UID"
CONTAINER_MARKER = "AUTOGLM_TESTBED_CONTAINER"
NETNS_PREFIX = BRIDGE + "-"
GATEWAY = str(next(CIDR.hosts()))
IMAGE_LLAMA_SERVER = "/usr/local/bin/llama-server"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STUBS_FILE = os.path.join(RUN_DIR, "mount-stubs.txt")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(*cmd, check=True):
    """Runs a host command (ip, ...); raises with its stderr when it fails and check is set."""
    p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def preflight():
    problems = []
    if os.geteuid() != 0:
        problems.append("it must run as root (it creates network namespaces, veth pairs, a bridge and mounts)")
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux"), ("nsenter", "util-linux"), ("mount", "mount")):
        if not shutil.which(tool):
            problems.append(f"'{tool}' is not on PATH (install {package})")
    if problems:
        print("kubelet.py cannot run: " + "; ".join(problems), file=sys.stderr, flush=True)
        sys.exit(1)


IP = shutil.which("ip") or "ip"
UNSHARE = shutil.which("unshare") or "unshare"
NSENTER = shutil.which("nsenter") or "nsenter"
MOUNT = shutil.which("mount") or "mount"
SH = shutil.which("sh") or "/bin/sh"

# ---------------------------------------------------------------------------------------------
# processes, network


def marked_pids(entry):
    """Live processes whose environment holds `entry` ("NAME=value"): what a container started,
    wherever it went (its own process group, reparented)."""
    needle = entry.encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    out.append(int(d))
        except OSError:
            continue
    return out


def signal_container(proc, entry, sig):
    """Signals a container: its process group while its main process is not reaped, and every
    process carrying its marker."""
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for p in marked_pids(entry):
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def netns_pids(ns):
    p = run(IP, "netns", "pids", ns, check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def kill_netns_processes(ns):
    for _ in range(50):
        pids = netns_pids(ns)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def ensure_bridge():
    if run(IP, "link", "show", BRIDGE, check=False).returncode != 0:
        run(IP, "link", "add", BRIDGE, "type", "bridge")
    addr = f"{GATEWAY}/{CIDR.prefixlen}"
    if addr not in run(IP, "-o", "addr", "show", "dev", BRIDGE).stdout:
        run(IP, "addr", "add", addr, "dev", BRIDGE)
    run(IP, "link", "set", BRIDGE, "up")


def our_netns():
    p = run(IP, "netns", "list", check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.split() and line.split()[0].startswith(NETNS_PREFIX)]


def remove_stubs():
    """Removes the mount-point directories this kubelet created on the host (only if still empty)."""
    try:
        with open(STUBS_FILE) as f:
            stubs = [s for s in f.read().splitlines() if s]
    except FileNotFoundError:
        return
    for d in sorted(set(stubs), key=lambda s: -s.count("/")):
        try:
            os.rmdir(d)
        except OSError:
            pass
    os.remove(STUBS_FILE)


def cleanup_host():
    """Everything a kubelet with this bridge left behind: pod processes, netns (and their veths), bridge, stubs."""
    for ns in our_netns():
        kill_netns_processes(ns)
        run(IP, "netns", "delete", ns, check=False)
    run(IP, "link", "delete", BRIDGE, check=False)
    remove_stubs()
    shutil.rmtree(os.path.join(RUN_DIR, "bin"), ignore_errors=True)
    shutil.rmtree(os.path.join(RUN_DIR, "pods"), ignore_errors=True)


stub_lock = threading.Lock()


def ensure_mount_point(path, is_file=False):
    """Creates a missing mount point on the host, recording what was created (removed at stop)."""
    if os.path.lexists(path):
        return
    with stub_lock:
        created, d = [], path if not is_file else os.path.dirname(path)
        while d and d != "/" and not os.path.lexists(d):
            created.append(d)
            d = os.path.dirname(d)
        target = path if not is_file else os.path.dirname(path)
        os.makedirs(target, exist_ok=True)
        if is_file:
            open(path, "a").close()
            created.insert(0, path)
        with open(STUBS_FILE, "a") as f:
            for c in created:
                f.write(c + "\n")


class IPPool:
    def __init__(self):
        self.lock = threading.Lock()
        self.free = [str(h) for h in CIDR.hosts()][1:]
        self.used = {}

    def take(self, uid):
        with self.lock:
            if uid not in self.used:
                if not self.free:
                    raise RuntimeError(f"no free pod IP left in {CIDR}")
                self.used[uid] = self.free.pop(0)
            return self.used[uid]

    def give(self, uid):
        with self.lock:
            ip = self.used.pop(uid, None)
            if ip:
                self.free.append(ip)


POOL = IPPool()

# ---------------------------------------------------------------------------------------------
# API access (raw JSON: camelCase keys as in the API)

# Root and the tools first: without them nothing else matters.
preflight()
try:
    from kubernetes import client, config  # noqa: E402
    from kubernetes.client.rest import ApiException  # noqa: E402
except ImportError:
    print("kubelet.py cannot run: the Python 'kubernetes' client is missing: python3 -m pip install kubernetes "
          "(scripts/k8s-testbed.sh start installs it)", file=sys.stderr, flush=True)
    sys.exit(1)

v1 = None


def raw(call, *a, **kw):
    r = call(*a, _preload_content=False, **kw)
    return json.loads(r.data)


def read_object(kind, ns, name):
    """A ConfigMap or Secret as JSON, or None when it does not exist."""
    try:
        if kind == "configmap":
            return raw(v1.read_namespaced_config_map, name, ns)
        return raw(v1.read_namespaced_secret, name, ns)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def object_data(kind, obj):
    """key -> bytes of a ConfigMap (data + binaryData) or Secret (base64 data)."""
    out = {}
    if kind == "configmap":
        for k, v in (obj.get("data") or {}).items():
            out[k] = v.encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
    return out


class ConfigError(Exception):
    """A container cannot be created (CreateContainerConfigError) or a volume cannot be set up."""


# ---------------------------------------------------------------------------------------------
# images

def image_repository(image):
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)
    if ":" in last[-1]:
        ref = ref[: ref.rindex(":")]
    return ref


def image_problem(image):
    """Why `image` cannot be pulled here, or None when the stand-in runs it."""
    if FAIL_IMAGE_RE.search(image):
        return (f'failed to pull and unpack image "{image}": the testbed kubelet treats tags matching '
                f'{FAIL_IMAGE_RE.pattern} as images that do not exist')
    repo = image_repository(image)
    if "autoglm" not in repo.rsplit("/", 1)[-1]:
        return (f'failed to pull image "{image}": the testbed kubelet runs only the autoglm image '
                f'(a repository whose name contains "autoglm"), with the local binary $AUTOGLM_BIN')
    return None


def is_llama(arg):
    return arg in ("llama-server", IMAGE_LLAMA_SERVER)


stage_lock = threading.Lock()


def stage(path):
    """A hard link (or copy) of a host program under the run dir: a pod's volumes may hide its own
    path (a binary under /tmp while the pod mounts an emptyDir on /tmp)."""
    st = os.stat(path)
    d = os.path.join(RUN_DIR, "bin", f"{st.st_dev}-{st.st_ino}-{st.st_size}-{int(st.st_mtime)}")
    target = os.path.join(d, os.path.basename(path))
    with stage_lock:
        if not os.path.exists(target):
            os.makedirs(d, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
    return target


def resolve_program(argv):
    """The host program for the autoglm image's argv[0]; raises ConfigError when it cannot run."""
    prog = argv[0]
    if prog in ("autoglm", "/usr/local/bin/autoglm", "/usr/bin/autoglm"):
        b = os.environ.get("AUTOGLM_BIN", "")
        if not b or not os.access(b, os.X_OK):
            raise ConfigError(f'exec: "{prog}": the testbed kubelet runs the autoglm image\'s autoglm with $AUTOGLM_BIN, '
                              f'which is {"not set" if not b else "not an executable file: " + b}; start the test bed with '
                              f'AUTOGLM_BIN=/path/to/autoglm (scripts/test.sh exports it)')
        return [stage(b)] + argv[1:]
    if is_llama(prog):
        ls = os.environ.get("AUTOGLM_LLAMA_SERVER", "")
        if ls and os.access(ls, os.X_OK):
            return [stage(ls)] + argv[1:]
    if "/" not in prog and not shutil.which(prog, path=IMAGE_PATH):
        raise ConfigError(f'exec: "{prog}": executable file not found in $PATH')
    return argv


VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(s, env):
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return VAR_RE.sub(sub, s)


# ---------------------------------------------------------------------------------------------
# probes

PROBE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="probe")


def container_port(c, port):
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in c.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"container {c['name']} has no port named {port!r}")


def run_probe(probe, c, pod_ip, pid):
    """(success, message) of one probe attempt."""
    timeout = probe.get("timeoutSeconds") or 1
    try:
        if "httpGet" in probe:
            h = probe["httpGet"]
            host = h.get("host") or pod_ip
            port = container_port(c, h.get("port"))
            if (h.get("scheme") or "HTTP").upper() == "HTTPS":
                conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                   context=ssl._create_unverified_context())
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
            headers.setdefault("User-Agent", "kube-probe/1.20")
            try:
                conn.request("GET", h.get("path") or "/", headers=headers)
                r = conn.getresponse()
                r.read()
            finally:
                conn.close()
            if 200 <= r.status < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {r.status}"
        if "tcpSocket" in probe:
            t = probe["tcpSocket"]
            with socket.create_connection((t.get("host") or pod_ip, container_port(c, t.get("port"))), timeout=timeout):
                return True, ""
        if "exec" in probe:
            cmd = probe["exec"].get("command") or []
            p = subprocess.run([NSENTER, "-t", str(pid), "-n", "-m", "--"] + cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=timeout)
            if p.returncode == 0:
                return True, ""
            return False, f"command {cmd} exited {p.returncode}: {p.stdout.decode(errors='replace')[-200:]}"
        return True, ""
    except Exception as e:  # refused, timeout, ...
        return False, f"probe failed: {e}"


class ProbeState:
    def __init__(self, kind, probe, started_at):
        self.kind, self.probe = kind, probe
        self.period = probe.get("periodSeconds") or 10
        self.failure_threshold = probe.get("failureThreshold") or 3
        self.success_threshold = probe.get("successThreshold") or 1
        self.next_at = started_at + (probe.get("initialDelaySeconds") or 0)
        self.successes = self.failures = 0
        self.future = None
        self.last_message = ""


# ---------------------------------------------------------------------------------------------
# containers

class Container:
    def __init__(self, spec, init):
        self.spec, self.init, self.name = spec, init, spec["name"]
        self.proc = None
        self.instance = 0          # starts so far
        self.restart_count = 0
        self.started_at = None     # wall time string of the running instance
        self.started_mono = 0.0
        self.state = {"waiting": {"reason": "PodInitializing"}}
        self.last_state = {}
        self.next_start = 0.0      # monotonic time the next start may happen
        self.backoff = 0.0
        self.ready = False
        self.started = False
        self.done = False          # init container completed / main container finished for good
        self.probes = {}
        self.exit_reason = None    # set when the kubelet killed it (liveness/startup)
        self.log_path = None

    def bump_backoff(self):
        self.backoff = BACKOFF if self.backoff == 0 else min(self.backoff * 2, BACKOFF_MAX)
        self.next_start = time.monotonic() + self.backoff
        return self.backoff

    def status(self):
        s = {"name": self.name, "image": self.spec.get("image", ""), "imageID": "",
             "ready": bool(self.ready), "restartCount": self.restart_count, "state": self.state,
             "lastState": self.last_state}
        if self.proc is not None or self.instance:
            s["containerID"] = f"testbed://{self.name}-{self.instance}"
            s["imageID"] = "testbed://" + self.spec.get("image", "")
        if not self.init:
            s["started"] = bool(self.started)
        return s


class PodWorker(threading.Thread):
    def __init__(self, pod, kubelet):
        super().__init__(daemon=True, name="pod-" + pod["metadata"]["name"])
        self.pod = pod
        self.kubelet = kubelet
        m = pod["metadata"]
        self.ns, self.pod_name, self.uid = m["namespace"], m["name"], m["uid"]
        self.netns = NETNS_PREFIX + self.uid
        self.host_network = bool(pod["spec"].get("hostNetwork"))
        self.pod_ip = None
        self.pod_dir = os.path.join(RUN_DIR, "pods", self.uid)
        self.log_dir = os.path.join(RUN_DIR, "logs", f"{self.ns}_{self.pod_name}_{self.uid}")
        self.inits = [Container(c, True) for c in pod["spec"].get("initContainers") or []]
        self.mains = [Container(c, False) for c in pod["spec"].get("containers") or []]
        self.restart_policy = pod["spec"].get("restartPolicy") or "Always"
        self.volumes_ready = False
        self.volume_paths = {}
        self.setup_error = None
        self.network_ready = False
        self.stop_event = threading.Event()
        self.vanished = False
        self.shutdown = False
        self.finished = False
        self.last_sent = None
        self.transitions = {}
        self.start_time = now()
        self.phase_final = None

    # -- control from the main loop
    def update(self, pod):
        self.pod = pod

    def vanish(self):
        self.vanished = True
        self.stop_event.set()

    def stop(self):
        self.shutdown = True
        self.stop_event.set()

    def deleting(self):
        return bool(self.pod["metadata"].get("deletionTimestamp"))

    # -- lifecycle
    def run(self):
        log(f"pod {self.ns}/{self.pod_name} ({self.uid}): starting")
        try:
            while not (self.vanished or self.shutdown or self.deleting()):
                try:
                    self.step()
                except Exception as e:
                    log(f"pod {self.ns}/{self.pod_name}: {e!r}\n{traceback.format_exc()}")
                    self.setup_error = str(e)
                self.report()
                self.stop_event.wait(0.2)
        finally:
            if self.vanished or self.shutdown:
                grace = STOP_GRACE if self.shutdown else 0
            else:
                g = self.pod["metadata"].get("deletionGracePeriodSeconds")
                grace = g if g is not None else self.pod["spec"].get("terminationGracePeriodSeconds", 30)
            self.kill_all(grace)
            self.teardown()
            if self.deleting() and not self.vanished and not self.shutdown:
                try:
                    v1.delete_namespaced_pod(self.pod_name, self.ns, grace_period_seconds=0,
                                             body=client.V1DeleteOptions(grace_period_seconds=0,
                                                                         preconditions=client.V1Preconditions(uid=self.uid)))
                except ApiException as e:
                    if e.status not in (404, 409):
                        log(f"pod {self.ns}/{self.pod_name}: delete failed: {e.status} {e.reason}")
            log(f"pod {self.ns}/{self.pod_name} ({self.uid}): gone")
            self.finished = True

    def setup(self):
        if not self.network_ready:
            if self.host_network:
                self.pod_ip = GATEWAY
            else:
                self.pod_ip = POOL.take(self.uid)
                self.setup_network()
            self.network_ready = True
        if not self.volumes_ready:
            self.setup_volumes()
            self.volumes_ready = True
        self.setup_error = None

    def setup_network(self):
        h = "v" + self.uid.replace("-", "")[:12]
        p = "p" + self.uid.replace("-", "")[:12]
        run(IP, "netns", "delete", self.netns, check=False)
        run(IP, "link", "delete", h, check=False)
        run(IP, "netns", "add", self.netns)
        run(IP, "link", "add", h, "type", "veth", "peer", "name", p)
        run(IP, "link", "set", h, "master", BRIDGE)
        run(IP, "link", "set", h, "up")
        run(IP, "link", "set", p, "netns", self.netns)
        run(IP, "-n", self.netns, "link", "set", p, "name", "eth0")
        run(IP, "-n", self.netns, "addr", "add", f"{self.pod_ip}/{CIDR.prefixlen}", "dev", "eth0")
        run(IP, "-n", self.netns, "link", "set", "eth0", "up")
        run(IP, "-n", self.netns, "link", "set", "lo", "up")
        run(IP, "-n", self.netns, "route", "add", "default", "via", GATEWAY)
        log(f"pod {self.ns}/{self.pod_name}: netns {self.netns}, ip {self.pod_ip}, veth {h}")

    def setup_volumes(self):
        vols = os.path.join(self.pod_dir, "volumes")
        os.makedirs(vols, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        os.makedirs(os.path.join(self.pod_dir, "home"), exist_ok=True)
        for v in self.pod["spec"].get("volumes") or []:
            name = v["name"]
            d = os.path.join(vols, name)
            if "hostPath" in v:
                hp = v["hostPath"]
                path = hp["path"]
                if not os.path.exists(path):
                    t = hp.get("type") or ""
                    if t == "DirectoryOrCreate":
                        os.makedirs(path, exist_ok=True)
                    elif t == "FileOrCreate":
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        open(path, "a").close()
                    elif t:
                        raise ConfigError(f'MountVolume.SetUp failed for volume "{name}": hostPath {path} does not exist')
                self.volume_paths[name] = path
                continue
            os.makedirs(d, exist_ok=True)
            self.volume_paths[name] = d
            for kind, key in (("configmap", "configMap"), ("secret", "secret")):
                if key not in v:
                    continue
                src = v[key]
                obj_name = src.get("name") if kind == "configmap" else src.get("secretName")
                obj = read_object(kind, self.ns, obj_name)
                if obj is None:
                    if src.get("optional"):
                        continue
                    raise ConfigError(f'MountVolume.SetUp failed for volume "{name}": {kind} "{obj_name}" not found')
                data = object_data(kind, obj)
                mode = src.get("defaultMode", 0o644)
                items = src.get("items")
                pairs = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else \
                    [(k, k, mode) for k in data]
                for k, path, m in pairs:
                    if k not in data:
                        if src.get("optional"):
                            continue
                        raise ConfigError(f'MountVolume.SetUp failed for volume "{name}": {kind} "{obj_name}" has no key "{k}"')
                    full = os.path.join(d, path)
                    os.makedirs(os.path.dirname(full), exist_ok=True)
                    with open(full, "wb") as f:
                        f.write(data[k])
                    os.chmod(full, m)
            # emptyDir (any medium), projected/downwardAPI/pvc: a plain per-pod directory.

    # -- env and command
    def field(self, path):
        m, st = self.pod["metadata"], self.pod.get("status") or {}
        simple = {"metadata.name": m.get("name"), "metadata.namespace": m.get("namespace"),
                  "metadata.uid": m.get("uid"), "status.podIP": self.pod_ip or "", "status.hostIP": GATEWAY,
                  "spec.nodeName": NODE, "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", ""),
                  "status.podIPs": self.pod_ip or ""}
        if path in simple:
            return simple[path] or ""
        mm = re.match(r"metadata\.(labels|annotations)\['(.*)'\]$", path)
        if mm:
            return (m.get(mm.group(1)) or {}).get(mm.group(2), "")
        raise ConfigError(f"unsupported fieldRef {path}")

    def container_env(self, c):
        spec = c.spec
        env = {"PATH": IMAGE_PATH, "HOSTNAME": self.pod_name, "HOME": os.path.join(self.pod_dir, "home")}
        # The autoglm image's own ENV (Containerfile).
        env["AUTOGLM_MODELS_DIR"] = "/models"
        env["AUTOGLM_LLAMA_SERVER"] = IMAGE_LLAMA_SERVER
        for ef in spec.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
                if key in ef:
                    ref = ef[key]
                    obj = read_object(kind, self.ns, ref["name"])
                    if obj is None:
                        if ref.get("optional"):
                            continue
                        raise ConfigError(f'{kind} "{ref["name"]}" not found')
                    for k, val in object_data(kind, obj).items():
                        env[prefix + k] = val.decode(errors="replace")
        for e in spec.get("env") or []:
            name = e["name"]
            if "valueFrom" not in e:
                env[name] = expand(e.get("value", ""), env)
                continue
            vf = e["valueFrom"]
            if "fieldRef" in vf:
                env[name] = self.field(vf["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                kind, ref = ("secret", vf["secretKeyRef"]) if "secretKeyRef" in vf else ("configmap", vf["configMapKeyRef"])
                obj = read_object(kind, self.ns, ref["name"])
                data = object_data(kind, obj) if obj is not None else None
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    if data is None:
                        raise ConfigError(f'{kind} "{ref["name"]}" not found')
                    raise ConfigError(f"couldn't find key {ref['key']} in {kind.replace('configmap', 'ConfigMap').replace('secret', 'Secret')} {self.ns}/{ref['name']}")
                env[name] = data[ref["key"]].decode(errors="replace")
            elif "resourceFieldRef" in vf:
                env[name] = "0"
        llama = os.environ.get("AUTOGLM_LLAMA_SERVER", "")
        if llama and os.access(llama, os.X_OK):
            llama = stage(llama)
            for k, val in env.items():
                if val == IMAGE_LLAMA_SERVER:
                    env[k] = llama
        env[MARKER] = self.uid
        return env

    def container_marker(self, c):
        return f"{CONTAINER_MARKER}={self.uid}/{c.name}/{c.instance}"

    def argv(self, c, env):
        spec = c.spec
        # The autoglm image: ENTRYPOINT ["autoglm"], CMD ["serve", "--config", "/etc/autoglm/autoglm.yaml"].
        if spec.get("command"):
            argv = list(spec["command"]) + list(spec.get("args") or [])
        else:
            argv = ["autoglm"] + list(spec.get("args") or ["serve", "--config", "/etc/autoglm/autoglm.yaml"])
        argv = [expand(a, env) for a in argv]
        return resolve_program(argv)

    def mount_script(self, c):
        lines = ["set -e"]
        for vm in c.spec.get("volumeMounts") or []:
            src = self.volume_paths.get(vm["name"])
            if src is None:
                raise ConfigError(f'volumeMount "{vm["name"]}" names no volume of the pod')
            if vm.get("subPath"):
                src = os.path.join(src, vm["subPath"])
                if not os.path.exists(src):
                    os.makedirs(src, exist_ok=True)
            dst = vm["mountPath"]
            ensure_mount_point(dst, is_file=os.path.isfile(src))
            lines.append(f"{MOUNT} --bind {shlex.quote(src)} {shlex.quote(dst)}")
            if vm.get("readOnly"):
                lines.append(f"{MOUNT} -o remount,bind,ro {shlex.quote(dst)}")
        wd = c.spec.get("workingDir")
        if wd:
            lines.append(f"mkdir -p {shlex.quote(wd)}; cd {shlex.quote(wd)}")
        lines.append('exec "$@"')
        return "\n".join(lines)

    # -- one container start
    def start_container(self, c):
        image = c.spec.get("image", "")
        problem = image_problem(image)
        if problem:
            c.state = {"waiting": {"reason": "ErrImagePull", "message": problem}}
            c.pull_failed_at = time.monotonic()
            c.bump_backoff()
            log(f"pod {self.ns}/{self.pod_name}: container {c.name}: ErrImagePull ({image})")
            return
        try:
            env = self.container_env(c)
            argv = self.argv(c, env)
            script = self.mount_script(c)
        except ConfigError as e:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
            c.next_start = time.monotonic() + 2
            return
        env[CONTAINER_MARKER] = f"{self.uid}/{c.name}/{c.instance + 1}"  # this start's marker (container_marker)
        c.log_path = os.path.join(self.log_dir, c.name + ".log")
        logf = open(c.log_path, "ab")
        if self.host_network:
            cmd = [UNSHARE, "-m", "--propagation", "private", "--", SH, "-c", script, "sh"] + argv
        else:
            cmd = [IP, "netns", "exec", self.netns, UNSHARE, "-m", "--propagation", "private", "--",
                   SH, "-c", script, "sh"] + argv
        try:
            c.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                      start_new_session=True, cwd="/")
        finally:
            logf.close()
        c.instance += 1
        c.started_at = now()
        c.started_mono = time.monotonic()
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = False
        c.exit_reason = None
        c.probes = {}
        if not c.init:
            for kind, key in (("startup", "startupProbe"), ("readiness", "readinessProbe"), ("liveness", "livenessProbe")):
                if c.spec.get(key):
                    c.probes[kind] = ProbeState(kind, c.spec[key], c.started_mono)
            c.started = "startup" not in c.probes
            c.ready = c.started and "readiness" not in c.probes
        log(f"pod {self.ns}/{self.pod_name}: container {c.name} started (pid {c.proc.pid}): "
            f"{' '.join(shlex.quote(a) for a in argv)}; log {c.log_path}")

    @staticmethod
    def pull_backoff_message(c):
        image = c.spec.get("image", "")
        return f'Back-off pulling image "{image}" ({image_problem(image)})'

    def tail(self, path, n=5):
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 2000))
                lines = f.read().decode(errors="replace").splitlines()[-n:]
            return " | ".join(lines)
        except OSError:
            return ""

    def reap(self, c):
        """Records the exit of c's process; returns the exit code."""
        code = c.proc.returncode
        if code < 0:
            code = 128 - code
        signal_container(None, self.container_marker(c), signal.SIGKILL)  # leftovers of its tree
        reason = c.exit_reason or ("Completed" if code == 0 else "Error")
        c.last_state = {"terminated": {"exitCode": code, "reason": reason, "startedAt": c.started_at,
                                       "finishedAt": now(), "containerID": f"testbed://{c.name}-{c.instance}"}}
        if code != 0:
            tail = self.tail(c.log_path)
            c.last_state["terminated"]["message"] = (tail + " " if tail else "") + f"(log: {c.log_path})"
        c.proc = None
        c.ready = False
        c.started = False
        c.probes = {}
        log(f"pod {self.ns}/{self.pod_name}: container {c.name} exited {code} ({reason}); log {c.log_path}")
        return code

    def should_restart(self, code):
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)

    def handle_exit(self, c):
        code = self.reap(c)
        if c.init and code == 0:
            c.state, c.last_state, c.done = c.last_state, {}, True
            return
        if not self.should_restart(code):
            c.state, c.last_state, c.done = c.last_state, {}, True
            return
        # A container that ran for 10 minutes starts over with the shortest back-off.
        if time.monotonic() - c.started_mono > 600:
            c.backoff = 0
        wait = c.bump_backoff()
        c.restart_count += 1
        c.state = {"waiting": {"reason": "CrashLoopBackOff",
                               "message": f"back-off {int(wait)}s restarting failed container={c.name} pod={self.pod_name}_{self.ns}({self.uid}); log {c.log_path}"}}

    def step_probes(self, c):
        t = time.monotonic()
        for kind in ("startup", "readiness", "liveness"):
            ps = c.probes.get(kind)
            if ps is None or (kind != "startup" and not c.started) or (kind == "startup" and c.started):
                continue
            if ps.future is not None:
                if not ps.future.done():
                    continue
                ok, msg = ps.future.result()
                ps.future = None
                ps.last_message = msg
                if ok:
                    ps.successes += 1
                    ps.failures = 0
                else:
                    ps.failures += 1
                    ps.successes = 0
                if kind == "startup":
                    if ok:
                        c.started = True
                        c.ready = "readiness" not in c.probes
                        for other in ("readiness", "liveness"):
                            if other in c.probes:
                                o = c.probes[other]
                                o.next_at = t + (o.probe.get("initialDelaySeconds") or 0)
                    elif ps.failures >= ps.failure_threshold:
                        self.probe_kill(c, f"Startup probe failed: {msg}")
                        return
                elif kind == "readiness":
                    if ok and ps.successes >= ps.success_threshold:
                        c.ready = True
                    elif not ok and ps.failures >= ps.failure_threshold:
                        c.ready = False
                elif kind == "liveness" and not ok and ps.failures >= ps.failure_threshold:
                    self.probe_kill(c, f"Liveness probe failed: {msg}")
                    return
            if ps.future is None and t >= ps.next_at:
                ps.next_at = t + ps.period
                ps.future = PROBE_POOL.submit(run_probe, ps.probe, c.spec, self.pod_ip, c.proc.pid)

    def probe_kill(self, c, why):
        log(f"pod {self.ns}/{self.pod_name}: container {c.name}: {why}; killing it")
        c.exit_reason = "Error"
        grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        self.kill_containers([c], grace)
        self.handle_exit(c)

    def step(self):
        if self.phase_final:
            return
        try:
            self.setup()
        except ConfigError as e:
            self.setup_error = str(e)
            return
        t = time.monotonic()
        # Init containers, one after the other.
        for c in self.inits:
            if c.done:
                continue
            if c.proc is not None:
                if c.proc.poll() is not None:
                    self.handle_exit(c)
                    if c.done and c.state.get("terminated", {}).get("exitCode", 0) != 0:
                        self.phase_final = "Failed"
                return
            if t >= c.next_start:
                self.start_container(c)
            elif "ErrImagePull" == c.state.get("waiting", {}).get("reason") and t - getattr(c, "pull_failed_at", t) > 1:
                c.state = {"waiting": {"reason": "ImagePullBackOff", "message": self.pull_backoff_message(c)}}
            return
        # Main containers.
        for c in self.mains:
            if c.done:
                continue
            if c.proc is not None:
                if c.proc.poll() is not None:
                    self.handle_exit(c)
                else:
                    self.step_probes(c)
                continue
            if t >= c.next_start:
                self.start_container(c)
            elif "ErrImagePull" == c.state.get("waiting", {}).get("reason") and t - getattr(c, "pull_failed_at", t) > 1:
                c.state = {"waiting": {"reason": "ImagePullBackOff", "message": self.pull_backoff_message(c)}}
        if self.mains and all(c.done for c in self.mains):
            codes = [c.state.get("terminated", {}).get("exitCode", 0) for c in self.mains]
            self.phase_final = "Succeeded" if all(x == 0 for x in codes) else "Failed"

    # -- status
    def condition(self, ctype, ok, reason="", message=""):
        status = "True" if ok else "False"
        prev = self.transitions.get(ctype)
        if prev is None or prev[0] != status:
            self.transitions[ctype] = (status, now())
        c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": self.transitions[ctype][1]}
        # (A strategic merge patch keeps fields it does not name: null clears an old reason.)
        c["reason"], c["message"] = (reason, message) if not ok and reason else (None, None)
        return c

    def status(self):
        inits_done = all(c.done for c in self.inits)
        if not inits_done:
            for c in self.mains:
                c.state = {"waiting": {"reason": "PodInitializing"}}
        if self.setup_error:
            for c in self.inits + self.mains:
                if c.proc is None and not c.done and c.instance == 0:
                    c.state = {"waiting": {"reason": "ContainerCreating", "message": self.setup_error}}
        unready = [c.name for c in self.mains if not c.ready]
        incomplete = [c.name for c in self.inits if not c.done]
        if self.phase_final:
            phase = self.phase_final
        elif inits_done and any(c.proc is not None for c in self.mains):
            phase = "Running"
        else:
            phase = "Pending"
        conditions = [
            self.condition("Initialized", inits_done, "ContainersNotInitialized",
                           f"containers with incomplete status: [{' '.join(incomplete)}]"),
            self.condition("Ready", not unready, "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"),
            self.condition("ContainersReady", not unready, "ContainersNotReady",
                           f"containers with unready status: [{' '.join(unready)}]"),
            self.condition("PodScheduled", True),
        ]
        st = {"phase": phase, "hostIP": GATEWAY, "startTime": self.start_time, "conditions": conditions,
              "containerStatuses": [c.status() for c in self.mains]}
        if self.pod_ip and self.network_ready:
            st["podIP"] = self.pod_ip
            st["podIPs"] = [{"ip": self.pod_ip}]
        if self.inits:
            st["initContainerStatuses"] = [c.status() for c in self.inits]
        return st

    def report(self):
        if self.deleting() or self.vanished or self.shutdown:
            return
        st = self.status()
        blob = json.dumps(st, sort_keys=True)
        if blob == self.last_sent:
            return
        try:
            v1.patch_namespaced_pod_status(self.pod_name, self.ns, {"status": st})
            self.last_sent = blob
        except ApiException as e:
            if e.status == 404:
                self.vanish()
            else:
                log(f"pod {self.ns}/{self.pod_name}: status patch failed: {e.status} {e.reason} {e.body}")

    # -- stop
    def kill_containers(self, cs, grace):
        live = [c for c in cs if c.proc is not None and c.proc.poll() is None]
        for c in live:
            signal_container(c.proc, self.container_marker(c), signal.SIGTERM)
        deadline = time.monotonic() + max(0.0, float(grace))
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in live):
            time.sleep(0.1)
        for c in live:
            if c.proc.poll() is None:
                log(f"pod {self.ns}/{self.pod_name}: container {c.name} still runs after {grace} s: SIGKILL")
            signal_container(c.proc, self.container_marker(c), signal.SIGKILL)
            try:
                c.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"pod {self.ns}/{self.pod_name}: container {c.name} (pid {c.proc.pid}) did not die")

    def kill_all(self, grace):
        self.kill_containers(self.inits + self.mains, grace)
        for c in self.inits + self.mains:
            if c.proc is not None:
                c.proc = None

    def teardown(self):
        for p in marked_pids(f"{MARKER}={self.uid}"):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not self.host_network:
            kill_netns_processes(self.netns)
            run(IP, "netns", "delete", self.netns, check=False)
            run(IP, "link", "delete", "v" + self.uid.replace("-", "")[:12], check=False)
            POOL.give(self.uid)
        shutil.rmtree(self.pod_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# node and main loop

class Kubelet:
    def __init__(self):
        self.workers = {}
        self.running = True
        self.done_uids = set()

    def ensure_node(self):
        try:
            v1.read_node(NODE)
        except ApiException as e:
            if e.status != 404:
                raise
            v1.create_node({"metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                                                                   "type": "testbed"}}, "spec": {}})
        # TaintNodesByCondition admission adds node.kubernetes.io/not-ready:NoSchedule at creation; the
        # (disabled) node-lifecycle controller would remove it once Ready. Do it here.
        node = v1.read_node(NODE)
        taints = [t for t in (node.spec.taints or []) if not t.key.startswith("node.kubernetes.io/")]
        if len(taints) != len(node.spec.taints or []):
            v1.patch_node(NODE, {"spec": {"taints": [t.to_dict() for t in taints] or None}})
        self.heartbeat()

    def heartbeat(self):
        cap = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8", "ephemeral-storage": "1Ti"}
        t = now()
        cond = lambda typ, st, reason, msg: {"type": typ, "status": st, "reason": reason, "message": msg,
                                             "lastHeartbeatTime": t, "lastTransitionTime": self.started_at}
        v1.patch_node_status(NODE, {"status": {
            "capacity": cap, "allocatable": cap,
            "addresses": [{"type": "InternalIP", "address": GATEWAY}, {"type": "Hostname", "address": NODE}],
            "conditions": [cond("Ready", "True", "KubeletReady", "testbed kubelet: pods run as local processes"),
                           cond("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
                           cond("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
                           cond("PIDPressure", "False", "KubeletHasSufficientPID", "")],
            "nodeInfo": {"kubeletVersion": "v1.20.2-testbed", "architecture": "amd64", "operatingSystem": "linux",
                         "containerRuntimeVersion": "testbed://1", "kernelVersion": os.uname().release,
                         "osImage": "testbed", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}})

    def sync(self):
        pods = raw(v1.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={NODE}")["items"]
        seen = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            w = self.workers.get(uid)
            if w is not None:
                w.update(pod)
                continue
            if pod["metadata"].get("deletionTimestamp"):
                # Never started here (e.g. left from a previous run): nothing to stop.
                try:
                    v1.delete_namespaced_pod(pod["metadata"]["name"], pod["metadata"]["namespace"], grace_period_seconds=0,
                                             body=client.V1DeleteOptions(grace_period_seconds=0,
                                                                         preconditions=client.V1Preconditions(uid=uid)))
                except ApiException:
                    pass
                continue
            if uid in self.done_uids or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            w = PodWorker(pod, self)
            self.workers[uid] = w
            w.start()
        for uid, w in list(self.workers.items()):
            if uid not in seen and not w.finished:
                w.vanish()
            if w.finished:
                del self.workers[uid]
                if uid in seen:
                    self.done_uids.add(uid)
        self.done_uids &= seen

    def main(self):
        self.started_at = now()
        cleanup_host()
        ensure_bridge()
        os.makedirs(RUN_DIR, exist_ok=True)
        self.ensure_node()
        log(f"testbed kubelet running: node {NODE}, bridge {BRIDGE} {GATEWAY}/{CIDR.prefixlen}, run dir {RUN_DIR}, "
            f"AUTOGLM_BIN={os.environ.get('AUTOGLM_BIN', '(unset)')}")
        last_hb = time.monotonic()
        while self.running:
            try:
                if time.monotonic() - last_hb > 10:
                    self.heartbeat()
                    last_hb = time.monotonic()
                self.sync()
            except ApiException as e:
                log("api error:", e.status, e.reason)
            except Exception as e:  # keep going across transient errors (API server restarting, ...)
                log("error:", repr(e))
            for _ in range(int(POLL / 0.05) or 1):
                if not self.running:
                    break
                time.sleep(0.05)
        log("stopping: killing every pod")
        for w in self.workers.values():
            w.stop()
        for w in self.workers.values():
            if w.ident is not None:
                w.join(timeout=STOP_GRACE + 15)
        cleanup_host()
        left = our_netns()
        log("stopped" + (f"; netns left behind: {left}" if left else "; no netns left"))


def main():
    if sys.argv[1:] == ["--cleanup"]:
        cleanup_host()
        return
    global v1
    config.load_kube_config()
    v1 = client.CoreV1Api()
    k = Kubelet()

    def on_signal(*_):
        k.running = False
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    k.main()


if __name__ == "__main__":
    main()
