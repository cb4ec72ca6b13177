"""A judge behind OpenAI-compatible servers (vLLM, SGLang, hosted APIs), over one or many replicas.

With the judge's tokenizer (``tokenizer=``, or the served model's ``root`` when that is a readable
local folder, as with a local vLLM server) prompts go to ``/v1/completions`` as token ids, exactly
the ids ``ChatEncoder`` makes for the offline engine (``prompt="token_ids"``). The server renders
nothing: candidate text stays plain text (a forged ``<|im_end|>`` never becomes a control token),
and templates that trim a continued assistant message (Llama-3, Gemma) cannot cut the answer
slot's trailing space. With ``prefill`` (the default) the prompt ends in the engine's answer slot;
``max_tokens=1``, ``temperature=0`` and ``logprob_token_ids`` = the label token ids, returned by
id (``return_tokens_as_token_ids``), give exact label log-probabilities (``"exact"``). Labels of
several tokens add one prompt per label prefix to the same request (prompt + "1", read "0"), as
the engine's second pass does. At start every server must take token-id prompts; one that does
not honour ``logprob_token_ids`` is read from its top ``top_logprobs`` tokens (``"top20"``).

Without a tokenizer, prompts can only go as chat messages the server renders (``prompt="chat"``):
for hosted APIs, i.e. ``prefill=False`` on a server that is not vLLM or SGLang (whose rendering
turns special-token text in a message into control tokens); anything else is refused at start,
naming the fix. A top token then counts for a label when its text, stripped or not, is the label.
``label_source="text"`` parses up to ``TEXT_MAX_TOKENS`` generated tokens: no probability is
measured, so the verdict is one-hot with label mass 0.0 and ``label_logprobs="text"``.

Faults: 429, 5xx, timeouts and connection errors are retried (bounded, jittered exponential
backoff, Retry-After honoured); other HTTP errors and malformed responses make that one request
an error (an invalid verdict). Every request gets exactly one result, in request order; ``stats``
counts attempts, retries and faults by kind. Replicas: requests with the same ``prefix_key`` go
to the same base URL (rendezvous hashing), so each server's prefix cache sees the whole prefix
group; a retry moves on to the next URL only when a replica refuses connections or times out.

596 lines: one client (prompt ids, retries, replica routing, two reply formats) whose parts share
one retry and routing state.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import math
import os
import random
import threading
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import openai

from judgekit.backends.base import AnswerSlot, BackendBase, TokenSeq, label_logprobs
from judgekit.backends.fingerprint import fingerprint
from judgekit.backends.prompt import ChatEncoder
from judgekit.backends.spec import OpenAIJudge
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest

T = TypeVar("T")

#: Tokens generated when the label is parsed from text (``label_source="text"``): room for
#: a leading space or a repeated cue before the label.
TEXT_MAX_TOKENS = 8
#: ``owned_by`` of servers that render chat messages with special-token text as control tokens.
RENDERING_SERVERS = ("vllm", "sglang")
#: How vLLM names a token in logprobs with ``return_tokens_as_token_ids``.
TOKEN_ID_PREFIX = "token_id:"


@dataclass
class ServerStats:
    """What happened on the wire during this backend's life (all runs together).

    ``faults`` counts failed attempts by kind (``http_<status>``, ``timeout``, ``connection``,
    ``malformed``); ``errors`` counts requests that ended invalid; ``fallbacks`` counts requests
    whose label was parsed from text instead of read from logprobs.
    """

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    errors: int = 0
    fallbacks: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    per_replica: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "faults": dict(self.faults), "per_replica": list(self.per_replica)}


@dataclass(frozen=True)
class _Slot:
    """The engine's answer slot of one (cue, labels): labels are read by token id; ``token_of``
    names the ids for servers that return token text. None: no prefill, labels read by text."""

    answer: AnswerSlot | None = None
    token_of: Mapping[str, int] = field(default_factory=dict)


class _Malformed(ValueError):
    """The server answered 200 but the body cannot be read as a label distribution."""


class _Retryable(Exception):
    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retry_after = retry_after


class _Rejected(Exception):
    """A non-retryable HTTP error (4xx other than 429): this request is invalid."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class OpenAIServer(BackendBase):
    """A judge served over OpenAI-compatible completions; see the module docstring."""

    def __init__(self, options: OpenAIJudge | None = None, **overrides: Any) -> None:
        if options is None:
            options = OpenAIJudge(**overrides)
        elif overrides:
            options = OpenAIJudge(**{**options.model_dump(), **overrides})
        self._options = options
        api_key = os.environ.get(options.api_key_env) or "EMPTY"
        self._clients = [
            openai.AsyncOpenAI(
                base_url=url, api_key=api_key, max_retries=0, timeout=options.timeout
            )
            for url in options.base_url
        ]
        self._slots: dict[tuple[str, tuple[str, ...]], _Slot] = {}
        self._limits = [asyncio.Semaphore(options.max_concurrency) for _ in options.base_url]
        self._stats = ServerStats(per_replica=[0] * len(options.base_url))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="judgekit-openai", daemon=True
        )
        self._thread.start()
        try:
            model, served_fingerprint, served = self._run(self._discover())
            self._model = model
            tokenizer = options.tokenizer or _local_folder(served.get("root"))
            if tokenizer is None:
                _refuse_chat(options, served)
            self._encoder, tokenizer_hash = (
                _judge_tokenizer(tokenizer) if tokenizer else (None, None)
            )
            self._exact = self._encoder is not None and all(
                self._run(self._check_token_ids(i)) for i in range(len(self._clients))
            )
        except BaseException:
            self.close()
            raise
        if options.label_source == "text":
            method = "text"
        else:
            method = "exact" if self._exact else f"top{options.top_logprobs}"
        self._identity = JudgeIdentity(
            backend="openai",
            model=model,
            fingerprint=served_fingerprint,
            settings={
                "replicas": len(options.base_url),
                "served_by": served.get("owned_by"),
                "max_model_len": served.get("max_model_len"),
                "prompt": "chat" if tokenizer is None else "token_ids",
                "tokenizer": tokenizer_hash,
                "label_logprobs": method,
                "temperature": 0.0,
                "prefill": options.prefill,
                "label_source": options.label_source,
            },
        )

    @property
    def identity(self) -> JudgeIdentity:
        """Model, settings and the prompt ending of each (cue, labels) prepared or scored."""
        tails = {
            f"{cue!r} {list(labels)}": slot.answer and slot.answer.tail
            for (cue, labels), slot in self._slots.items()
        }
        settings = {**self._identity.settings, "answer_tails": json.dumps(tails, sort_keys=True)}
        return self._identity.model_copy(update={"settings": settings})

    def prepare(self, requests: Sequence[LabelRequest]) -> None:
        """Resolve the answer slot of every (cue, labels) in ``requests`` (no request is sent)."""
        self._slots_for(requests)

    def stats(self) -> dict[str, Any]:
        """A snapshot of the wire counters (attempts, retries, faults by kind, fallbacks)."""
        return copy.deepcopy(self._stats).as_dict()

    def replica_for(self, prefix_key: str) -> int:
        """Index of the base URL that serves this prefix group (while it accepts connections)."""
        return self._ranking(prefix_key)[0]

    def answer_tail(self, request: LabelRequest) -> str | None:
        """The prompt ending in use for this request's (cue, labels).

        None before a request of that kind was prepared or scored, or with ``prefill=False``.
        """
        slot = self._slots.get(_slot_key(request))
        return slot.answer.tail if slot and slot.answer else None

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        """Concurrent requests over the replicas; exactly one result per request, in order."""
        requests = list(requests)
        slots = self._slots_for(requests)
        prompts = self._prompts(requests, slots)  # tokenised here, not on the event loop
        return self._run(self._score_all(list(zip(requests, slots, prompts, strict=True))))

    def close(self) -> None:
        """Close the HTTP connections and stop the event loop thread."""
        if not self._loop.is_running():
            return
        self._run(_close_all(self._clients))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run on the backend's own loop thread: works from plain code and from inside a loop."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _discover(self) -> tuple[str, str, dict[str, Any]]:
        """(model, fingerprint, the model's /models entry); every replica must serve the model."""
        listings = []
        for url, client in zip(self._options.base_url, self._clients, strict=True):
            try:
                raw = await client.models.with_raw_response.list()
                listings.append({m["id"]: m for m in json.loads(raw.content)["data"]})
            except Exception as err:
                raise ConnectionError(f"cannot list the models served at {url}: {err}") from err
        model = self._options.model or next(iter(listings[0]), None)
        for url, listing in zip(self._options.base_url, listings, strict=True):
            if model not in listing:
                raise ValueError(f"{url} does not serve model {model!r} (it lists {list(listing)})")
        served = listings[0][model]
        identity = f"{model}\0{served.get('root') or ''}"
        return model, "served:" + hashlib.sha256(identity.encode()).hexdigest()[:12], served

    def _ranking(self, prefix_key: str) -> list[int]:
        """Rendezvous hashing: replicas by descending hash(url, key); stable as URLs come and go."""

        def weight(i: int) -> bytes:
            text = f"{self._options.base_url[i]}\0{prefix_key}".encode()
            return hashlib.blake2b(text, digest_size=8).digest()

        return sorted(range(len(self._clients)), key=weight, reverse=True)

    async def _check_token_ids(self, replica: int) -> bool:
        """True when a server returns the log-probability of a given id for a token-id prompt;
        False when it takes token-id prompts only (or only they are needed); else ValueError."""
        url = self._options.base_url[replica]
        body: dict[str, Any] = {"model": self._model, "prompt": [0], "max_tokens": 1}
        exact = {"logprob_token_ids": [0], "return_tokens_as_token_ids": True}
        asks = [{"logprobs": 1, "extra_body": exact}, {}]
        if self._options.label_source == "text" or not self._options.prefill:
            asks = asks[1:]
        for ask in asks:
            try:
                data = await self._post(replica, {**body, **ask})
            except (_Rejected, _Malformed):
                continue
            except _Retryable as err:
                raise ConnectionError(f"{url} failed the token-id prompt check: {err}") from err
            if not ask:
                return False
            with contextlib.suppress(KeyError, IndexError, TypeError):
                if TOKEN_ID_PREFIX + "0" in data["choices"][0]["logprobs"]["top_logprobs"][0]:
                    return True
        raise ValueError(
            f"{url} takes no token-id prompt on /v1/completions; judgekit will not send it chat "
            "text to render (special-token text in a candidate would become control tokens). "
            "Serve the judge with vLLM or SGLang, or judge with the offline vllm backend."
        )

    def _slots_for(self, requests: Sequence[LabelRequest]) -> list[_Slot]:
        """Each request's slot, resolved once per (cue, labels) with the judge's tokenizer."""
        out = []
        for request in requests:
            key = _slot_key(request)
            if key not in self._slots:
                self._slots[key] = self._new_slot(request)
            out.append(self._slots[key])
        return out

    def _new_slot(self, request: LabelRequest) -> _Slot:
        if self._encoder is None or not self._options.prefill:
            return _Slot()
        answer = self._encoder.answer_slot(request)
        ids = {t for next_ids in answer.queries().values() for t in next_ids}
        decode = self._encoder.tokenizer.decode
        return _Slot(answer, {decode([t]): t for t in ids})

    def _prompts(
        self, requests: Sequence[LabelRequest], slots: Sequence[_Slot]
    ) -> list[list[list[int]] | None]:
        """Token-id prompts per request: the engine's prompt, then prompt + each label prefix."""
        if self._encoder is None:
            return [None] * len(requests)
        if self._options.prefill:
            encoded = self._encoder.prompts(requests)
        else:
            encoded = self._encoder.encode_chats([(r.messages, None) for r in requests])
        out: list[list[list[int]] | None] = []
        for prompt, slot in zip(encoded, slots, strict=True):
            prefixes: Sequence[TokenSeq] = [()]
            if slot.answer is not None and self._options.label_source == "logprobs":
                prefixes = list(slot.answer.queries())  # () first
            out.append([prompt.ids + list(prefix) for prefix in prefixes])
        return out

    async def _score_all(self, jobs: Sequence[tuple[Any, ...]]) -> list[LabelLogprobs]:
        final = await asyncio.gather(*(self._request(*job) for job in jobs))
        self._stats.requests += len(final)
        self._stats.errors += sum(r.error is not None for r in final)
        return final

    async def _request(
        self, request: LabelRequest, slot: _Slot, prompts: list[list[int]] | None
    ) -> LabelLogprobs:
        """One request to its replica, retried on transient faults; never raises for the wire."""
        opts = self._options
        ranking = self._ranking(request.prefix_key)
        body = self._body(request, slot, prompts)
        attempt = moved = 0
        while True:
            replica = ranking[moved % len(ranking)]
            try:
                async with self._limits[replica]:
                    self._stats.attempts += 1
                    data = await self._post(replica, body)
                result = self._read(data, slot, request, prompts)
            except _Retryable as fault:
                self._stats.faults[fault.kind] += 1
                if attempt == opts.max_retries:
                    return LabelLogprobs(
                        {}, 0, 0, f"{fault.kind} after {attempt + 1} tries: {fault}"
                    )
                delay = self._backoff(attempt, fault.retry_after)
                attempt += 1
                moved += fault.kind in ("connection", "timeout")
                self._stats.retries += 1
                await asyncio.sleep(delay)
            except _Malformed as err:
                self._stats.faults["malformed"] += 1
                return LabelLogprobs({}, 0, 0, f"malformed response: {err}")
            except _Rejected as err:
                self._stats.faults[err.kind] += 1
                return LabelLogprobs({}, 0, 0, str(err))
            else:
                self._stats.per_replica[replica] += 1
                return result

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when the server gives one, else full-range jittered exponential backoff."""
        cap = self._options.backoff_max
        if retry_after is not None:
            return min(retry_after, cap)
        return random.uniform(0.5, 1.0) * min(cap, self._options.backoff_base * 2**attempt)

    def _body(
        self, request: LabelRequest, slot: _Slot, prompts: list[list[int]] | None
    ) -> dict[str, Any]:
        """A text completion of token ids, or (no tokenizer) a chat the server renders."""
        opts = self._options
        body: dict[str, Any] = {"model": self._model, "temperature": 0.0, "max_tokens": 1}
        if prompts is None:
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
            body["messages"].pop()  # the answer cue: hosted chat APIs cannot continue it
        else:
            body["prompt"] = prompts[0] if len(prompts) == 1 else prompts
        if opts.label_source == "text":
            body["max_tokens"] = TEXT_MAX_TOKENS
        elif prompts is None:
            body.update(logprobs=True, top_logprobs=opts.top_logprobs)
        elif slot.answer is None:
            body["logprobs"] = opts.top_logprobs
        elif self._exact:
            ids = sorted({t for next_ids in slot.answer.queries().values() for t in next_ids})
            extra = {"logprob_token_ids": ids, "return_tokens_as_token_ids": True}
            body.update(logprobs=len(ids), extra_body=extra)
        else:
            body.update(logprobs=opts.top_logprobs, extra_body={"return_tokens_as_token_ids": True})
        return body

    async def _post(self, replica: int, body: dict[str, Any]) -> Any:
        """The decoded JSON body of one attempt; transient failures raise ``_Retryable``."""
        client = self._clients[replica]
        api = client.completions if "prompt" in body else client.chat.completions
        try:
            raw = await api.with_raw_response.create(**body)
        except openai.APITimeoutError as err:
            raise _Retryable("timeout", str(err)) from err
        except openai.APIConnectionError as err:
            raise _Retryable("connection", str(err)) from err
        except openai.APIStatusError as err:
            kind = f"http_{err.status_code}"
            if err.status_code == 429 or err.status_code >= 500:
                raise _Retryable(kind, str(err), _retry_after(err.response.headers)) from err
            raise _Rejected(kind, f"HTTP {err.status_code}: {err.message}") from err
        try:
            return json.loads(raw.content)
        except ValueError as err:
            raise _Malformed(f"invalid JSON ({len(raw.content)} bytes): {err}") from err

    def _read(
        self, data: Any, slot: _Slot, request: LabelRequest, prompts: list[list[int]] | None
    ) -> LabelLogprobs:
        """Label log-probabilities (or the parsed label) from a decoded completion."""
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not all(isinstance(c, dict) for c in choices):
            raise _Malformed("no choices")
        choices = sorted(choices, key=lambda c: c.get("index") or 0)
        usage = data.get("usage") or {}
        n_prompt = int(usage.get("prompt_tokens") or 0)
        n_cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        if prompts is not None:
            sent = sum(len(p) for p in prompts)
            if "prompt_tokens" in usage and n_prompt != sent:
                raise _Malformed(f"the server read {n_prompt} prompt tokens of the {sent} sent")
            n_prompt = len(prompts[0])
        if self._options.label_source == "text":
            self._stats.fallbacks += 1
            text = choices[0].get("text") or (choices[0].get("message") or {}).get("content")
            label = _parse_label(text or "", request.messages[-1].content, request.labels)
            return LabelLogprobs({label: 0.0} if label else {}, n_prompt, n_cached)
        if slot.answer is None:
            mass: dict[str, float] = {}
            for token, logprob in _first_top(choices[0]):
                label = _text_label(token, request.labels)
                if label is not None:
                    mass[label] = mass.get(label, 0.0) + math.exp(logprob)
            found = {label: math.log(p) for label, p in mass.items() if p > 0}
            return LabelLogprobs(found, n_prompt, n_cached)
        queries = slot.answer.queries()
        if prompts is None or len(choices) != len(queries):
            raise _Malformed(f"{len(choices)} choices for {len(queries)} prompts")
        next_logprobs: dict[TokenSeq, dict[int, float]] = {}
        for (prefix, wanted), choice in zip(queries.items(), choices, strict=True):
            top = {_token_id(t, slot.token_of): lp for t, lp in _first_top(choice)}
            missing = [t for t in wanted if t not in top]
            if missing and self._exact:
                raise _Malformed(f"no log-probability for label token ids {missing}")
            next_logprobs[prefix] = {t: top.get(t, -math.inf) for t in wanted}
        return LabelLogprobs(label_logprobs(slot.answer, next_logprobs), n_prompt, n_cached)


def _slot_key(request: LabelRequest) -> tuple[str, tuple[str, ...]]:
    return request.messages[-1].content, request.labels


def _first_top(choice: dict[str, Any]) -> list[tuple[str, float]]:
    """(token, logprob) of the first generated position's top tokens, chat or text completion."""
    try:
        logprobs = choice.get("logprobs") or {}
        if "content" in logprobs:  # chat: [{"token", "logprob", "top_logprobs": [...]}]
            entries = (logprobs["content"] or [{}])[0].get("top_logprobs") or []
            top = [(str(e["token"]), float(e["logprob"])) for e in entries]
        else:  # text completion: "top_logprobs": [{token: logprob}, ...]
            first = (logprobs.get("top_logprobs") or [{}])[0] or {}
            top = [(str(token), float(logprob)) for token, logprob in first.items()]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as err:
        raise _Malformed(f"unreadable logprobs: {err!r}") from err
    if not top:
        raise _Malformed("no top logprobs although logprobs were requested")
    return top


def _token_id(token: str, token_of: Mapping[str, int]) -> int | None:
    """A returned token's id: ``token_id:N`` (vLLM), else the label token that decodes to it."""
    number = token.removeprefix(TOKEN_ID_PREFIX)
    return int(number) if number != token and number.isdigit() else token_of.get(token)


def _text_label(token: str, labels: Sequence[str]) -> str | None:
    """The label a token text spells, as it is or stripped of whitespace."""
    return next((text for text in (token, token.strip()) if text in labels), None)


def _parse_label(text: str, cue: str, labels: Sequence[str]) -> str | None:
    """The label a generated text spells exactly (whitespace and a repeated cue aside), or None."""
    text = text.strip()
    if text.startswith(cue):
        text = text[len(cue) :].strip()
    return text if text in labels else None


def _local_folder(root: Any) -> str | None:
    """The served model's root when it is a readable local folder with a tokenizer."""
    folder = Path(root) if isinstance(root, str) and root else None
    names = ("tokenizer.json", "tokenizer_config.json")
    found = folder is not None and any((folder / name).is_file() for name in names)
    return str(folder) if found and os.access(folder, os.R_OK) else None


def _refuse_chat(options: OpenAIJudge, served: Mapping[str, Any]) -> None:
    """Chat messages without a tokenizer only for hosted APIs; else a ValueError naming the fix."""
    owner = served.get("owned_by")
    if options.prefill:
        why = "ending the prompt in the answer slot (prefill) needs the judge's tokenizer"
    elif owner in RENDERING_SERVERS:
        why = f"{owner} renders chat messages with special-token text as control tokens"
    else:
        return
    raise ValueError(
        f"{why}; none was given and the served root {served.get('root')!r} is no local folder. "
        "Pass tokenizer=DIR (CLI: --tokenizer DIR), a local copy of the judge's tokenizer, to "
        "send the engine's token ids; for hosted chat APIs (no assistant prefill): prefill=False."
    )


def _judge_tokenizer(path: str) -> tuple[ChatEncoder, str]:
    """The encoder, and the tokenizer files' content hash (it decides every prompt id)."""
    from transformers import AutoTokenizer

    hashed = fingerprint(path, "tokenizer") if Path(path).is_dir() else "hub:" + path
    return ChatEncoder(AutoTokenizer.from_pretrained(path)), hashed


def _retry_after(headers: Any) -> float | None:
    """Retry-After in its seconds form (or OpenAI's retry-after-ms); HTTP dates are ignored."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


async def _close_all(clients: Sequence[Any]) -> None:
    for client in clients:
        await client.close()


__all__ = ["TEXT_MAX_TOKENS", "OpenAIServer", "ServerStats"]
