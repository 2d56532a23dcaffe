"""pytest plugin: run llama.cpp's own server tests (tools/server/tests) against `autoglm serve`.

What: llama.cpp's tests start `llama-server` through `utils.ServerProcess.start()`, configured by
presets (`ServerPreset.tinyllama2()` …) whose fields name Hugging Face models and llama-server
options. This plugin replaces `start()` so the same tests launch `autoglm serve` with a local model
instead, and stands in for their conftest.py (which pre-downloads every preset; there is no
internet here but PyPI). Nothing of llama.cpp is copied into this repository: the runner points
pytest at the llama.cpp sources that bench/build-llama-server.sh caches (the llama-cpp-python
0.3.36 sdist) and loads this file with `--noconftest -p autoglm_llamacpp_plugin`.

How to run: scripts/test-llamacpp-suite.sh (sets the environment below, writes junit xml, and
prints the markdown table from report.py).

Mapping of ServerProcess fields to `autoglm serve` flags:
  model_hf_repo / model_hf_file / model_file / model_url / model_alias -> --model: a name containing
      "gemma" -> $AUTOGLM_GEMMA_MODEL, everything else (tinyllama2's stories260K, the Qwen2.5 presets
      of the slow tool-call tests) -> $AUTOGLM_QWEN_MODEL (Qwen2.5-Coder-0.5B-Instruct)
  model_alias -> --served-model-name     n_ctx -> --ctx (and a --kv-cache-mb that holds it)
  n_slots -> --max-seqs                  n_batch -> --max-batched-tokens (capped at 512)
  n_threads -> --threads (default $AUTOGLM_THREADS or 2)            api_key -> --api-key
  server_port / server_host -> --port / --host
Fields with no `autoglm serve` equivalent (jinja on/off — autoglm always renders the GGUF's own
Jinja template —, chat_template[_file], n_predict, the server-wide temperature/seed defaults, debug,
reasoning_format, ctk/ctv/fa, …) are left out; each test records the ones it set in its junit
<properties> (autoglm_unmapped) so report.py can name them.
Paths: llama-server also answers the OpenAI routes without the /v1 prefix and /health; those
aliases are sent to /v1/… and /healthz (make_url), so a test reaches the route it means.
Markers: slow tests are deselected by the runner except the rows whose model is
Qwen2.5-Coder-3B-Instruct without a template override (marked autoglm_local_model here), which run
on the local Qwen2.5-Coder-0.5B; the other Qwen2.5 rows would repeat them on the same local model.

Environment: AUTOGLM_BIN, AUTOGLM_QWEN_MODEL, AUTOGLM_GEMMA_MODEL, AUTOGLM_SUITE_LOGS (a folder for
one server log per test), AUTOGLM_THREADS.
"""
import math
import os
import subprocess
import time

import pytest
import requests

import utils  # llama.cpp's tools/server/tests/utils.py, on PYTHONPATH
from utils import ServerProcess, server_instances

BIN = os.environ.get("AUTOGLM_BIN", "")
QWEN = os.environ.get("AUTOGLM_QWEN_MODEL", "")
GEMMA = os.environ.get("AUTOGLM_GEMMA_MODEL", "")
LOGS = os.environ.get("AUTOGLM_SUITE_LOGS", "/tmp")
THREADS = int(os.environ.get("AUTOGLM_THREADS", "2"))
KV_BYTES_PER_TOKEN = 18432  # f16 K+V per position: gemma3-270m 18 KiB, Qwen2.5-0.5B 12 KiB; the larger bounds both

# Fields a test may set that `autoglm serve` has no flag for, reported when they differ from the
# ServerProcess default.
UNMAPPED = ["jinja", "chat_template", "chat_template_file", "n_predict", "temperature", "seed", "debug",
            "reasoning_format", "reasoning", "n_ubatch", "ctk", "ctv", "fa", "cache_prompt", "server_slots",
            "server_embeddings", "server_reranking", "pooling", "lora_files", "enable_ctx_shift", "model_draft",
            "n_ga", "n_ga_w", "slot_save_path", "kv_unified", "swa_full", "sleep_idle_seconds", "cache_ram",
            "mmproj_url", "media_path", "server_tools", "backend_sampling", "gcp_compat", "cors_origins"]
ALIASES = {"/chat/completions": "/v1/chat/completions", "/completions": "/v1/completions",
           "/models": "/v1/models", "/embeddings": "/v1/embeddings", "/health": "/healthz"}

_current_item = None


def pick_model(s: ServerProcess) -> str:
    names = " ".join(str(v) for v in (s.model_hf_repo, s.model_hf_file, s.model_file, s.model_url, s.model_alias) if v)
    return GEMMA if "gemma" in names.lower() else QWEN


def unmapped_fields(s: ServerProcess) -> list[str]:
    out = []
    for name in UNMAPPED:
        value, default = getattr(s, name, None), getattr(ServerProcess, name, None)
        if value != default and value not in (None, False):
            out.append(f"{name}={value}")
    return out


def autoglm_start(self: ServerProcess, timeout_seconds: int = utils.DEFAULT_HTTP_TIMEOUT) -> None:
    if not BIN or not os.access(BIN, os.X_OK):
        raise RuntimeError(f"AUTOGLM_BIN={BIN!r} is not an executable autoglm binary")
    model = pick_model(self)
    if not os.path.isfile(model):
        raise RuntimeError(f"local model {model!r} is missing: run scripts/fetch-models.sh")
    ctx = self.n_ctx or 4096
    kv_mb = max(64, math.ceil(ctx * KV_BYTES_PER_TOKEN * 1.1 / 2**20) + 16)
    args = [BIN, "serve", "--model", model, "--host", self.server_host, "--port", self.server_port,
            "--served-model-name", self.model_alias or "autoglm-test", "--threads", self.n_threads or THREADS,
            "--ctx", ctx, "--kv-cache-mb", kv_mb, "--max-seqs", self.n_slots or 1]
    if self.n_batch:
        args += ["--max-batched-tokens", min(self.n_batch, 512)]
    if self.api_key:
        args += ["--api-key", self.api_key]
    args = [str(a) for a in args]
    skipped = unmapped_fields(self)
    if _current_item is not None:
        _current_item.user_properties.append(("autoglm_model", os.path.basename(model)))
        if skipped:
            _current_item.user_properties.append(("autoglm_unmapped", ",".join(skipped)))
    print(f"autoglm adapter: starting {' '.join(args)}" + (f" (not mapped: {', '.join(skipped)})" if skipped else ""))
    name = (_current_item.nodeid if _current_item is not None else "server").replace("/", "_").replace("::", "__")
    self._log = open(os.path.join(LOGS, name[:200] + ".log"), "w")
    self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
    server_instances.add(self)
    deadline = time.time() + max(timeout_seconds, 300)  # a shared 2-core machine loads slowly
    while time.time() < deadline:
        try:
            if requests.get(self.make_url("/readyz"), timeout=5).status_code == 200:
                self.ready = True
                return
        except requests.RequestException:
            pass
        if self.process.poll() is not None:
            raise RuntimeError(f"autoglm serve exited with {self.process.returncode}; log: {self._log.name}")
        time.sleep(0.1)
    raise TimeoutError(f"autoglm serve not ready after {max(timeout_seconds, 300)} s; log: {self._log.name}")


_original_make_url = ServerProcess.make_url


def autoglm_make_url(self: ServerProcess, path: str, host: str | None = None) -> str:
    return _original_make_url(self, ALIASES.get(path, path), host)


ServerProcess.start = autoglm_start
ServerProcess.make_url = autoglm_make_url


def pytest_configure(config):
    config.addinivalue_line("markers", "autoglm_local_model: a slow llama.cpp test whose Qwen2.5 model maps to the local Qwen")


def pytest_collection_modifyitems(config, items):
    for item in items:
        # One row per test is enough: every Qwen2.5 repo maps to the same local model, and the
        # "chatml" template override is what the Qwen template already is.
        if item.get_closest_marker("slow") and "Qwen2.5-Coder-3B" in item.nodeid and "chatml" not in item.nodeid:
            item.add_marker(pytest.mark.autoglm_local_model)


def pytest_runtest_setup(item):
    global _current_item
    _current_item = item


@pytest.fixture(autouse=True)
def stop_server_after_each_test():
    """What their conftest.py does: every server a test started is stopped after it."""
    yield
    for server in set(server_instances):
        server.stop()
