"""A judge behind OpenAI-compatible servers (vLLM, SGLang, hosted APIs), over one or many replicas.

Same contract as the offline engine: one chat completion per request with ``max_tokens=1`` and
``temperature=0``; the label log-probabilities go back to the runner, which scores them with the
one shared ``judgekit.judging.score.score_labels``. With a local copy of the judge's tokenizer
(``tokenizer=``) the label token ids are known and sent as ``logprob_token_ids`` (vLLM reads the
field from the request body): every label gets its exact log-probability, as in the engine
(``label_logprobs="exact"``). Whether the servers accept the field is checked once at start; a
server that does not, and any run without a tokenizer, reads the top ``top_logprobs`` tokens
instead (``label_logprobs="top20"``): a label outside them counts as zero.

On vLLM and SGLang the answer cue is sent as the final assistant message and continued
(``continue_final_message``), so the first generated token is the label exactly as in the engine.
Over HTTP the server returns token *strings*, not ids: a top token counts for a label when its text
(or its text stripped of whitespace) is the label, and the probabilities of a label's spellings
add up. The prompt ending (``cue`` or ``cue + " "``) is chosen per (cue, label set) either with a
local copy of the judge's tokenizer (``tokenizer=``: the engine's own ``resolve_answer_slot``) or,
without one, by probing the first request: keep ``cue`` unless it puts less than
``probe_min_mass`` on the labels, then use ``cue + " "`` for the rest of the run. The runner calls
``prepare`` before reading ``identity``, so the probe happens first and the chosen endings are part
of the identity (``answer_tails``): stored results of two endings never mix.

Without prefill or logprobs (hosted APIs), ``label_source="text"`` parses the generated text: no
probability is measured, so such a verdict is one-hot with label mass 0.0 and
``label_logprobs="text"`` in every row (the runner skips the mass threshold for it).

Faults: 429, 5xx, timeouts and connection errors are retried (bounded, jittered exponential
backoff, Retry-After honoured); other HTTP errors and malformed responses make that one request
an error (an invalid verdict), and the run goes on. Every request gets exactly one result, in
request order. ``stats`` counts attempts, retries and faults by kind for the run's report.

Replicas: every request with the same ``prefix_key`` goes to the same base URL (rendezvous
hashing), so each server's prefix cache sees the whole prefix group; only when a replica refuses
connections or times out (a hung replica) does a retry move on to the next URL in its ranking.

521 lines: one client (slot resolution, retries, replica routing, fallbacks) whose parts
share one retry and routing state.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai

from judgekit.backends.base import BackendBase, LabelTokenError
from judgekit.backends.prompt import ChatEncoder
from judgekit.backends.spec import OpenAIJudge
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest

T = TypeVar("T")

#: Tokens generated when the label is parsed from text (``label_source="text"``): room for
#: a leading space or a repeated cue before the label.
TEXT_MAX_TOKENS = 8


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
        return {
            "requests": self.requests,
            "attempts": self.attempts,
            "retries": self.retries,
            "errors": self.errors,
            "fallbacks": self.fallbacks,
            "faults": dict(self.faults),
            "per_replica": list(self.per_replica),
        }


@dataclass(frozen=True)
class _Slot:
    """How a request ends (``tail`` None: no assistant prefill) and which token texts are labels."""

    tail: str | None
    match: Callable[[str], str | None]
    ids: tuple[int, ...] = ()


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
    """A judge served over the OpenAI chat-completions API; see the module docstring."""

    def __init__(self, options: OpenAIJudge | None = None, **overrides: Any) -> None:
        if options is None:
            options = OpenAIJudge(**overrides)
        elif overrides:
            options = OpenAIJudge(**{**options.model_dump(), **overrides})
        if options.tokenizer is not None and options.tail != "auto":
            raise ValueError("give either tokenizer= or tail=, not both")
        self._options = options
        api_key = os.environ.get(options.api_key_env) or "EMPTY"
        self._clients = [
            openai.AsyncOpenAI(
                base_url=url, api_key=api_key, max_retries=0, timeout=options.timeout
            )
            for url in options.base_url
        ]
        self._encoder = (
            ChatEncoder(_load_tokenizer(options.tokenizer)) if options.tokenizer else None
        )
        self._slots: dict[tuple[str, tuple[str, ...]], _Slot] = {}
        self._stats = ServerStats(per_replica=[0] * len(options.base_url))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="judgekit-openai", daemon=True
        )
        self._thread.start()
        try:
            self._limits = self._run(
                _make_semaphores(len(options.base_url), options.max_concurrency)
            )
            model, fingerprint, served = self._run(self._discover())
            self._model = model
            self._exact = (
                self._encoder is not None
                and options.label_source == "logprobs"
                and all(self._run(self._accepts_label_ids(i)) for i in range(len(self._clients)))
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
            fingerprint=fingerprint,
            settings={
                "replicas": len(options.base_url),
                "served_by": served.get("owned_by"),
                "max_model_len": served.get("max_model_len"),
                "label_logprobs": method,
                "temperature": 0.0,
                "prefill": options.prefill,
                "answer_slot": "tokenizer" if options.tokenizer else options.tail,
                "label_source": options.label_source,
            },
        )

    @property
    def identity(self) -> JudgeIdentity:
        """Model, settings and the prompt ending chosen for each (cue, labels) so far.

        Call ``prepare`` with a run's requests first so that every ending is already chosen.
        """
        tails = {
            f"{cue!r} {list(labels)}": slot.tail for (cue, labels), slot in self._slots.items()
        }
        settings = {**self._identity.settings, "answer_tails": json.dumps(tails, sort_keys=True)}
        return self._identity.model_copy(update={"settings": settings})

    def prepare(self, requests: Sequence[LabelRequest]) -> None:
        """Choose the prompt ending of every (cue, labels) in ``requests`` (probing if needed).

        The probe's own answer is discarded; ``score`` asks again with the chosen ending.
        """
        self._run(self._resolve_slots(list(requests), [None] * len(requests)))

    def stats(self) -> dict[str, Any]:
        """A snapshot of the wire counters (attempts, retries, faults by kind, fallbacks)."""
        return copy.deepcopy(self._stats).as_dict()

    def replica_for(self, prefix_key: str) -> int:
        """Index of the base URL that serves this prefix group (while it accepts connections)."""
        return self._ranking(prefix_key)[0]

    def answer_tail(self, request: LabelRequest) -> str | None:
        """The prompt ending in use for this request's (cue, labels).

        None before the first request of that kind was answered, or with ``prefill=False``.
        """
        slot = self._slots.get(_slot_key(request))
        return slot.tail if slot else None

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        """Concurrent requests over the replicas; exactly one result per request, in order."""
        return self._run(self._score_all(list(requests)))

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

    async def _accepts_label_ids(self, replica: int) -> bool:
        """Whether a server returns the log-probability of a token id it is asked for."""
        body = {
            "model": self._model,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "extra_body": {"logprob_token_ids": [0]},
        }
        try:
            data = await self._post(replica, body)
            content = data["choices"][0]["logprobs"]["content"]
            return bool(content[0]["top_logprobs"])
        except (_Rejected, _Malformed, KeyError, IndexError, TypeError):
            return False
        except _Retryable as err:
            url = self._options.base_url[replica]
            raise ConnectionError(f"{url} failed the logprob_token_ids check: {err}") from err

    async def _score_all(self, requests: list[LabelRequest]) -> list[LabelLogprobs]:
        results: list[LabelLogprobs | None] = [None] * len(requests)
        await self._resolve_slots(requests, results)
        todo = [i for i, result in enumerate(results) if result is None]
        done = await asyncio.gather(
            *(self._request(requests[i], self._slots[_slot_key(requests[i])]) for i in todo)
        )
        for i, result in zip(todo, done, strict=True):
            results[i] = result
        final = [r for r in results if r is not None]
        assert len(final) == len(requests)
        self._stats.requests += len(final)
        self._stats.errors += sum(r.error is not None for r in final)
        return final

    async def _resolve_slots(
        self, requests: list[LabelRequest], results: list[LabelLogprobs | None]
    ) -> None:
        """Fill ``self._slots`` for the requests' keys; a probe's answer goes into ``results``."""
        to_probe: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        for i, request in enumerate(requests):
            key = _slot_key(request)
            if key not in self._slots:
                slot = self._fixed_slot(request)
                if slot is None:
                    to_probe.setdefault(key, []).append(i)
                else:
                    self._slots[key] = slot
        await asyncio.gather(
            *(self._probe(key, requests, where, results) for key, where in to_probe.items())
        )

    def _fixed_slot(self, request: LabelRequest) -> _Slot | None:
        """The slot when no probe is needed; None for ``tail='auto'`` with logprobs."""
        cue, labels = request.messages[-1].content, request.labels
        opts = self._options
        if not opts.prefill:
            return _Slot(None, _text_matcher(labels))
        if self._encoder is not None:
            return _tokenizer_slot(self._encoder, request)
        if opts.tail == "cue_space":
            return _Slot(cue + " ", _text_matcher(labels))
        if opts.tail == "cue" or opts.label_source == "text":
            return _Slot(cue, _text_matcher(labels))
        return None

    async def _probe(
        self,
        key: tuple[str, tuple[str, ...]],
        requests: Sequence[LabelRequest],
        where: list[int],
        results: list[LabelLogprobs | None],
    ) -> None:
        """Choose ``cue`` or ``cue + ' '`` on the first request of a (cue, labels) that answers.

        A request answered with ``cue`` keeps its result if ``cue`` wins; failed requests keep
        their error. If none answers, the key stays unresolved and the next batch probes again.
        """
        cue, labels = key
        bare = _Slot(cue, _text_matcher(labels))
        for i in where:
            result = await self._request(requests[i], bare)
            if result.error is not None:
                results[i] = result
                continue
            mass = math.fsum(math.exp(lp) for lp in result.logprobs.values())
            if mass >= self._options.probe_min_mass:
                self._slots[key] = bare
                results[i] = result
            else:
                self._slots[key] = _Slot(cue + " ", bare.match)
            return

    async def _request(self, request: LabelRequest, slot: _Slot) -> LabelLogprobs:
        """One request to its replica, retried on transient faults; never raises for the wire."""
        opts = self._options
        ranking = self._ranking(request.prefix_key)
        body = self._body(request, slot)
        attempt = moved = 0
        while True:
            replica = ranking[moved % len(ranking)]
            try:
                async with self._limits[replica]:
                    self._stats.attempts += 1
                    data = await self._post(replica, body)
                result = self._read(data, slot, request)
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

    def _body(self, request: LabelRequest, slot: _Slot) -> dict[str, Any]:
        opts = self._options
        chat = [{"role": m.role, "content": m.content} for m in request.messages[:-1]]
        body: dict[str, Any] = {"model": self._model, "messages": chat, "temperature": 0.0}
        if slot.tail is not None:
            chat.append({"role": "assistant", "content": slot.tail})
            body["extra_body"] = {"add_generation_prompt": False, "continue_final_message": True}
        if opts.label_source == "text":
            body["max_tokens"] = TEXT_MAX_TOKENS
        elif self._exact and slot.ids:
            body.update(max_tokens=1, logprobs=True)
            body.setdefault("extra_body", {})["logprob_token_ids"] = list(slot.ids)
        else:
            body.update(max_tokens=1, logprobs=True, top_logprobs=opts.top_logprobs)
        return body

    async def _post(self, replica: int, body: dict[str, Any]) -> Any:
        """The decoded JSON body of one attempt; transient failures raise ``_Retryable``."""
        try:
            raw = await self._clients[replica].chat.completions.with_raw_response.create(**body)
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

    def _read(self, data: Any, slot: _Slot, request: LabelRequest) -> LabelLogprobs:
        """Label log-probabilities (or the parsed label) from a decoded chat completion."""
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise _Malformed("no choices")
        usage = data.get("usage") or {}
        n_prompt = int(usage.get("prompt_tokens") or 0)
        n_cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        if self._options.label_source == "text":
            self._stats.fallbacks += 1
            text = (choices[0].get("message") or {}).get("content") or ""
            label = _parse_label(text, request.messages[-1].content, request.labels)
            return LabelLogprobs({label: 0.0} if label else {}, n_prompt, n_cached)
        content = (choices[0].get("logprobs") or {}).get("content")
        if not content or not isinstance(content[0], dict):
            raise _Malformed("no logprobs although logprobs were requested")
        top = content[0].get("top_logprobs")
        if not top:
            raise _Malformed("no top_logprobs although they were requested")
        if self._exact and slot.ids and len(top) < len(set(slot.ids)):
            raise _Malformed(f"{len(top)} logprobs for {len(set(slot.ids))} label token ids")
        mass: dict[str, float] = {}
        for entry in top:
            label = slot.match(entry.get("token", ""))
            if label is not None:
                mass[label] = mass.get(label, 0.0) + math.exp(float(entry["logprob"]))
        return LabelLogprobs(
            {label: math.log(p) for label, p in mass.items() if p > 0}, n_prompt, n_cached
        )


def _slot_key(request: LabelRequest) -> tuple[str, tuple[str, ...]]:
    return request.messages[-1].content, request.labels


def _text_matcher(labels: Sequence[str]) -> Callable[[str], str | None]:
    """A token text is a label's spelling when it, or it stripped of whitespace, is the label."""
    wanted = frozenset(labels)

    def match(token: str) -> str | None:
        for text in (token, token.strip()):
            if text in wanted:
                return text
        return None

    return match


def _parse_label(text: str, cue: str, labels: Sequence[str]) -> str | None:
    """The label a generated text spells exactly (whitespace and a repeated cue aside), or None."""
    text = text.strip()
    if text.startswith(cue):
        text = text[len(cue) :].strip()
    return text if text in labels else None


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _tokenizer_slot(encoder: ChatEncoder, request: LabelRequest) -> _Slot:
    """The engine's answer slot, with each label token id turned into the text servers return."""
    slot = encoder.answer_slot(request)
    if not slot.single_token:
        raise LabelTokenError(
            f"labels {list(request.labels)} are not one token each after {slot.tail!r}; "
            "multi-token labels are scored by the offline vLLM backend only"
        )
    tokenizer = encoder.tokenizer
    spellings = {
        tokenizer.decode(list(seq)): label for label, seqs in slot.sequences.items() for seq in seqs
    }
    ids = tuple(seq[0] for seqs in slot.sequences.values() for seq in seqs)
    return _Slot(slot.tail, spellings.get, ids)


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


async def _make_semaphores(n: int, limit: int) -> list[asyncio.Semaphore]:
    return [asyncio.Semaphore(limit) for _ in range(n)]


async def _close_all(clients: Sequence[Any]) -> None:
    for client in clients:
        await client.close()


__all__ = ["TEXT_MAX_TOKENS", "OpenAIServer", "ServerStats"]
