"""`backend:` config: one model per backend kind, combined as a union discriminated by `kind`.

Each kind accepts only its own keys, so a key of another kind (`threads` on an openai backend) is an error naming
the key and the kind instead of a setting silently ignored. `kind` may be left out: a backend is local unless it
says otherwise. backends/registry.py builds each kind.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from sprout.config.base import PriceConfig, Strict


class BackendBase(Strict):
    """The keys every kind has."""

    kind: str
    # local: `embedded` or a model folder; openai: the served model's name; vllm: `embedded`, a folder or a hub id
    model: str = "embedded"
    max_failure_rate: float = Field(0.2, ge=0, le=1, description="share of requests failing after retries (at "
                                    "least 5) that stops the run; fewer are recorded as backend_error rejects")
    price: PriceConfig | None = Field(None, description="optional: cost in the summary, report and --dry-run")


class LocalBackendConfig(BackendBase):
    """A model on this machine: the embedded one on llama.cpp (CPU), any model folder on transformers (CPU or CUDA)."""

    kind: Literal["local"] = "local"
    engine: Literal["auto", "llama.cpp", "transformers"] = Field(
        "auto", description="auto: llama.cpp for the embedded model on the CPU when llama-cpp-python is installed "
        "(`make setup` installs it), else transformers; a model folder always runs on transformers")
    weights: Literal["auto", "f16", "bf16", "q8_0", "q4_1"] = Field(
        "auto", description="llama.cpp only: the embedded model's 4-bit weights widened once to this type. auto: the "
        "faster of f16 and bf16 on this kind of CPU (f16 with AMX, bf16 with bf16 dot products and no AMX, else "
        "f16); q4_1: the shipped file as is, slower "
        "prefill on the CPU")
    batch_size: int | None = Field(None, gt=0, description="rows decoded together (default: 16 on llama.cpp; on "
                                   "transformers 32 on the CPU, 128 on CUDA)")
    threads: int | None = Field(None, gt=0)
    device: str = Field("auto", description="auto (CUDA when present, bf16; else CPU, fp32), cpu, cuda, cuda:N")


class OpenAIBackendConfig(BackendBase):
    """Any OpenAI-compatible server; a list of base URLs is a pool (least outstanding requests first)."""

    kind: Literal["openai"]
    base_url: str | tuple[str, ...] | None = None
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    max_concurrency: int = Field(8, gt=0)
    timeout: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, description="per request, by the client (backoff with jitter, Retry-After)")
    set_aside_after: int = Field(3, gt=0, description="failed tries in a row before a server is set aside")
    set_aside_for: float = Field(30.0, ge=0, description="seconds a failing server gets no requests")
    prefill: Literal["auto", "continue", "completions", "chat"] = Field(
        "auto", description="how a prompt ending in a prefill reaches the server: continue_final_message (vLLM, "
        "SGLang), raw text on /v1/completions, or the prompt file's chat-native form (chat-only hosts); auto finds "
        "out once per server")
    token_field: Literal["auto", "max_tokens", "max_completion_tokens"] = Field(
        "auto", description="the request field for the token limit; auto sends max_tokens until a server asks for "
        "max_completion_tokens (reasoning models)")

    @model_validator(mode="after")
    def _needs_a_server(self) -> OpenAIBackendConfig:
        if not self.base_url:
            raise ValueError("kind openai needs `base_url:` (e.g. http://localhost:8000/v1, or a list for a pool)")
        return self

    @property
    def base_urls(self) -> list[str]:
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url or ())


class VLLMBackendConfig(BackendBase):
    """In-process vLLM on this machine's GPUs; the engine options are vLLM's own, passed through."""

    kind: Literal["vllm"]
    tensor_parallel_size: int = Field(1, gt=0)
    data_parallel_size: int = Field(1, gt=0, description="model replicas (vLLM's own option, passed through)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int | None = Field(None, gt=0)
    dtype: str = "auto"


def _local_by_default(value: Any) -> Any:
    if isinstance(value, dict) and "kind" not in value:
        return {"kind": "local", **value}
    return value


BackendConfig = Annotated[LocalBackendConfig | OpenAIBackendConfig | VLLMBackendConfig, Field(discriminator="kind"),
                          BeforeValidator(_local_by_default)]
AnyBackendConfig = LocalBackendConfig | OpenAIBackendConfig | VLLMBackendConfig  # for annotations of built configs
