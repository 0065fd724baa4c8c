"""What an OpenAI-compatible server refuses, and what sprout sends it instead: read from its error answers.

A server's 400/422 names what it refuses (OpenAI's `param`, or the field in its message). The token limit goes as
`max_completion_tokens` when a server asks for it; a sampling field it refuses is left out from then on (said once,
with the value the config asked for: never a silent change); `n` is asked one sample per request. Anything else in
400, 401, 403, 404, 405 or 422 is refused for good: one message with the status, the server's words and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sprout.backends.base import Sampling
from sprout.core.errors import UserError

PREFILL_ROUTES = ("continue", "completions", "chat")  # backend.prefill (or auto: tried in this order)
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
SAMPLING_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "stop", "n")
REFUSED = (400, 401, 403, 404, 405, 422)  # a status no retry can change
# What a server answers a prefill route it does not have: an extra field refused (400, 422: vLLM's
# continue_final_message), a missing endpoint (404, 405: /v1/completions on a chat-only host). Chat is the last.
ROUTE_REFUSED = {"continue": (400, 422), "completions": (400, 404, 405, 422), "chat": ()}
FIXES = {
    401: "check the key in the variable backend.api_key_env names (and that it is for this host)",
    403: "the key has no access to this model or endpoint: check backend.model and the key's permissions",
    404: "check backend.model (the name the server lists at /v1/models) and backend.base_url (usually ends in /v1)",
    405: "check backend.base_url (usually ends in /v1)",
}


class BackendRefused(UserError):
    """The server refuses the request for good: the run stops here (exit 2); a rerun resumes from the cache."""


def server_words(error) -> str:
    """The server's own message from an error answer (OpenAI's `{"error": {"message"}}`, FastAPI's `detail`)."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        for key in ("message", "detail"):
            if inner.get(key):
                return str(inner[key])
    return str(getattr(error, "message", "") or error)


def refused_field(error, words: str) -> str | None:
    """The request field a 400/422 is about: OpenAI's `param`, else a sampling field named in the message."""
    if getattr(error, "param", None) in (*SAMPLING_FIELDS, *TOKEN_FIELDS):
        return str(error.param)
    named = [f for f in (*TOKEN_FIELDS, *SAMPLING_FIELDS) if re.search(rf"['\"`]{f}['\"`]", words)]
    return named[0] if named else None


def adapt(endpoint, error, sampling: Sampling, model: str, say: Callable[[str], None]) -> bool:
    """Change what this server (`endpoint`) is sent when its refusal names a field sprout can send otherwise or
    leave out; said once per server. True when the request should go again."""
    words = server_words(error)
    name = refused_field(error, words)
    if name == "max_tokens" or (name is None and "max_completion_tokens" in words):
        if endpoint.token_field != "max_tokens":
            return False
        endpoint.token_field = "max_completion_tokens"
        say(f"{endpoint.url} wants max_completion_tokens instead of max_tokens ({words[:200]}); sent so from now on "
            "(backend.token_field: max_completion_tokens skips the probe).")
        return True
    if name == "n" and endpoint.max_n != 1:
        endpoint.max_n = 1
        say(f"{endpoint.url} refuses `n` ({words[:200]}): samples are asked for one request each.")
        return True
    if name in SAMPLING_FIELDS and name not in endpoint.left_out:
        endpoint.left_out.add(name)
        value = list(sampling.stop) if name == "stop" else getattr(sampling, name, None)
        say(f"{endpoint.url} refuses {name}={value!r} for model {model} ({words[:200]}); requests go without {name} "
            "from now on, so the server's default is used instead of the configured value (recorded in each "
            "record's lineage as configured).")
        return True
    return False


def refused_for_good(url: str, error, key: str | None) -> BackendRefused:
    status, words = error.status_code, server_words(error)
    if key:
        words = words.replace(key, "***")
    field = refused_field(error, words)
    fix = FIXES.get(status) or (f"the server refuses the field `{field}`: change or remove it in the config" if field
                                else "the server's words say what it refuses; change that in the config or prompt")
    return BackendRefused(f"backend: {url} refused the request for good: HTTP {status} ({type(error).__name__}): "
                          f"{words!r}. Fix: {fix}. Nothing more was sent; a rerun resumes from the cache.")
