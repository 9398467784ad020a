"""The resilient HTTP client every adapter talks to its provider through.

One `ResilientClient.call` is one logical operation, made of as many attempts as the rules allow:

- **Idempotency**: a mutating call (POST/PATCH) is an *intent*. Its Idempotency-Key is written to
  the `IntegrationStore` together with the request before the first attempt and sent unchanged on
  every retry; the same `intent_id` after a restart finds the same key, so the provider replays
  what it already did instead of doing it twice. An intent already settled is answered from the
  store without a request (a key the provider has expired must never be re-sent).
- **Retries** only for what `integration.retry.classify` calls retryable: connection errors and
  timeouts, 429 and 5xx (and a 2xx whose JSON body is cut, which is as good as a lost answer).
  Waits are `Backoff.wait_s` (exponential, full jitter, capped) or the provider's `Retry-After`
  when longer; attempts and total time are capped (`Backoff.gives_up`, on the injected clock).
- **Breakers**: one per operation family (`Breakers[family]`). Every attempt asks
  `before_call`; an unwell verdict (retryable failure) counts as `on_failure`; any answer the
  provider gave deliberately (2xx, or a final 4xx: the caller's problem, not the provider's)
  is `on_success`, which also ends a half-open trial.
- **Outcomes**: a final 4xx raises `ProviderRejected(code, status, detail)` and settles the intent
  `failed`; exhaustion (attempts, time, or an open breaker) raises `ProviderUnavailable` with
  `ambiguous=True` when any attempt may have reached the provider. The intent then stays
  `ambiguous` (or `pending` when nothing can have happened) for the resumer, and the caller
  degrades (an ERP hold), it does not guess.
- **In flight**: a provider's "this key is being processed" answer (`in_flight_codes`, e.g. a
  concurrent duplicate of the same intent) is waited out like an ambiguous failure, never taken
  as a final refusal.
- **Timeouts** on every attempt (`timeout`, seconds, httpx's connect/read/write/pool).
- **Time budget**: under `integration.deadline.within(s)` (the shop's request, a drive of held
  work) all attempts of all calls share `s` seconds: an attempt's timeout is cut to what is
  left, no attempt starts once it is spent, and a wait that would outlast it ends the call
  (`ProviderUnavailable`, verdict `out_of_time` in the log when nothing was left to try).
- **Correlation and logs**: every attempt carries `X-Correlation-Id`: the call's
  `correlation_id`, else the one bound to the context (`integration.logs`: the service's
  request, the event being processed), else the intent id. Each attempt writes one JSON line
  to `sandbank.integration.provider` (family, method, path, intent, attempt, verdict, status,
  latency_ms on the injected clock, idempotency_key); an answer from the intent store or an
  open breaker writes one too (`verdict` `from_store` / `breaker_open`).

Why not stamina or tenacity (the issue prefers them "if they fit these rules"): neither is a
dependency of this project, and neither fits cleanly. stamina measures its total timeout on
`time.monotonic` and sleeps through its own `asyncio.sleep` (tests can only switch waiting off
globally), so an injected clock and an injected sleep, and a wait chosen per attempt from the
provider's `Retry-After`, would all fight the library. tenacity takes a `sleep=` and a custom
`wait=`, but its `stop_after_delay` reads `time.monotonic` too, and persisting the attempt
before it is made, classifying ambiguous vs. clean failures and feeding the breaker per attempt
end up as callbacks around the loop rather than in it. The loop below is ~40 lines over the
already-tested pure policy in `integration.retry`, with every source of time and chance injected.
"""

from __future__ import annotations

import json as jsonlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from integration import deadline, logs
from integration.breaker import Breaker, BreakerOpen, Breakers
from integration.errors import IntegrationError
from integration.retry import Backoff, Transport, Verdict, classify, retry_after_s
from integration.store import IntegrationStore, Intent, IntentStatus

OUT_OF_TIME = "the time budget of the work is spent"
MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
IDEMPOTENCY_HEADER = "Idempotency-Key"


class ProviderError(IntegrationError):
    """Root of what a provider call raises."""


class ProviderRejected(ProviderError):
    """A final answer from the provider (4xx): retrying cannot change it."""

    def __init__(
        self,
        code: str,
        status: int,
        detail: str,
        *,
        request_id: str | None = None,
        provider_code: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.code = code  # the provider's code from the client; canonical once an adapter maps it
        self.status = status
        self.detail = detail
        self.request_id = request_id
        self.provider_code = provider_code or code

    def canonical(self, code: str) -> ProviderRejected:
        """The same rejection under an adapter's canonical `code`; the provider's own code is
        kept in `provider_code` (for logs)."""
        return ProviderRejected(
            code, self.status, self.detail, request_id=self.request_id, provider_code=self.code
        )


class ProviderUnavailable(ProviderError):
    """The provider did not give an answer within the rules (attempts, time, open breaker).

    `ambiguous`: an attempt may have reached the provider, so the operation may have happened;
    only a retry with the same intent (same key) or a read of the provider's state resolves it.
    """

    def __init__(
        self,
        family: str,
        *,
        ambiguous: bool,
        attempts: int,
        last_error: str,
        breaker_open: bool = False,
    ) -> None:
        state = "may have happened" if ambiguous else "did not happen"
        super().__init__(
            f"the provider's {family} call failed after {attempts} attempt(s) ({last_error}); "
            f"it {state}"
        )
        self.family = family
        self.ambiguous = ambiguous
        self.attempts = attempts
        self.last_error = last_error
        self.breaker_open = breaker_open


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    status: int
    body: Any  # decoded JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    replayed: bool = False  # the provider (or the intent store) answered a repeat
    from_store: bool = False  # answered from a settled intent, without a request
    attempts: int = 0

    def json(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise TypeError(f"expected a JSON object, got {type(self.body).__name__}")
        return self.body


def transport_failure(exc: Exception) -> Transport | None:
    """Which transport failure an exception is (None: not a transport failure)."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return Transport.CONNECT_TIMEOUT  # nothing was sent
    if isinstance(exc, httpx.ConnectError):
        return Transport.CONNECT_ERROR
    if isinstance(exc, httpx.TimeoutException):  # read / write timeouts: sent, maybe processed
        return Transport.READ_TIMEOUT
    if isinstance(exc, httpx.RemoteProtocolError):
        return Transport.PROTOCOL_ERROR
    if isinstance(exc, httpx.TransportError | OSError):
        # ReadError/WriteError, and in-process transports raising ConnectionError: the request
        # may have been delivered.
        return Transport.RESET
    return None


class CallObserver(Protocol):
    """Told of every attempt and retry (e.g. `integration.metrics.Metrics`)."""

    def attempt(self, family: str, verdict: Verdict) -> None: ...

    def retry(self, family: str) -> None: ...


class _Unobserved:
    def attempt(self, family: str, verdict: Verdict) -> None:
        pass

    def retry(self, family: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Attempt:
    verdict: Verdict
    error: str
    response: httpx.Response | None = None
    body: Any = None


class ResilientClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        store: IntegrationStore,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        random: Callable[[], float],
        breakers: Breakers,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        correlation_header: str = "X-Correlation-Id",
        now: Callable[[], datetime],
        in_flight_codes: Collection[str] = (),
        observer: CallObserver | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        """`auth`: httpx's authentication, for a service that takes no bearer `api_key` (a
        support desk's basic auth). `in_flight_codes`: the provider's error codes for "this
        key is still being processed by another request" (a 409 that must be waited out, not
        taken as a final answer).
        `observer`: told of every attempt and retry (metrics); settable later as `.observer`."""
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.random = random
        self.breakers = breakers
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.correlation_header = correlation_header
        self.in_flight_codes = frozenset(in_flight_codes)
        self.observer: CallObserver = observer or _Unobserved()
        self._now = now
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "Accept": "application/json",
                **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
            auth=auth,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ResilientClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(
        self,
        family: str,
        method: str,
        path: str,
        json: Any = None,
        *,
        intent_id: str | None = None,
        params: Mapping[str, str | int] | None = None,
        correlation_id: str | None = None,
    ) -> ProviderResponse:
        """One logical operation: attempts under the retry rules and the family's breaker.

        Mutating calls need an `intent_id` when they must survive a restart (the same id later
        sends the same key); without one, a fresh intent is recorded for this call alone. On a
        read, `intent_id` only names the call (the correlation header).
        """
        method = method.upper()
        intent = None
        if method in MUTATING:
            intent = self.store.record_intent(
                intent_id or f"adhoc:{family}:{self.store.new_key()}",
                family,
                f"{method} {path}",
                json,
            )
        tracked = None if intent is None else intent.id  # the intent this call settles
        key = None if intent is None else intent.idempotency_key
        trace = _CallLog(family, method, path, tracked, key)
        if intent is not None and (settled := _settled_answer(intent, trace)) is not None:
            return settled
        # May an attempt of this intent have reached the provider? An intent left ambiguous by
        # an earlier call (or process) stays so until settled.
        ambiguous = intent is not None and intent.status is IntentStatus.AMBIGUOUS
        headers = {} if key is None else {IDEMPOTENCY_HEADER: key}
        if cid := correlation_id or logs.correlation_id() or tracked or intent_id:
            headers[self.correlation_header] = cid

        breaker = self.breakers[family]
        budget = deadline.current()
        started = self.clock()
        attempts = 0
        while True:
            left = None if budget is None else budget.remaining(self.clock())
            if left is not None and left <= 0:
                trace.emit(attempts, "out_of_time", level=logging.WARNING)
                raise self._unavailable(tracked, family, ambiguous, attempts, OUT_OF_TIME)
            try:
                breaker.before_call()
            except BreakerOpen as exc:
                self._unsettled(tracked, ambiguous=ambiguous, error=f"breaker open: {exc}")
                trace.emit(attempts, "breaker_open", level=logging.WARNING)
                raise ProviderUnavailable(
                    family,
                    ambiguous=ambiguous,
                    attempts=attempts,
                    last_error=str(exc),
                    breaker_open=True,
                ) from exc
            if tracked is not None:
                self.store.note_attempt(tracked)
            attempts += 1
            sent_at = self.clock()
            outcome = await self._attempt(
                breaker,
                method=method,
                path=path,
                json=json,
                headers=headers,
                params=params,
                timeout=self.timeout if left is None else min(self.timeout, left),
            )
            trace.attempted(attempts, outcome, self.clock() - sent_at)
            self.observer.attempt(family, outcome.verdict)
            if outcome.verdict is Verdict.SUCCESS:
                assert outcome.response is not None
                return self._succeeded(tracked, key, outcome, attempts)
            if outcome.verdict is Verdict.FINAL:
                raise self._refused(tracked, outcome)
            ambiguous = ambiguous or outcome.verdict is Verdict.RETRY_AMBIGUOUS
            after = (
                None
                if outcome.response is None
                else retry_after_s(outcome.response.headers, self._now())
            )
            wait = self.backoff.wait_s(attempts, self.random, after)
            if budget is not None and wait >= budget.remaining(self.clock()):
                error = f"{outcome.error}; {OUT_OF_TIME}"  # the caller holds the work
                raise self._unavailable(tracked, family, ambiguous, attempts, error)
            if self.backoff.gives_up(attempts, self.clock() - started, wait):
                raise self._unavailable(tracked, family, ambiguous, attempts, outcome.error)
            self.observer.retry(family)
            await self.sleep(wait)

    # --- one attempt ---------------------------------------------------------------------
    async def _attempt(
        self,
        breaker: Breaker,
        *,
        method: str,
        path: str,
        json: Any,
        headers: Mapping[str, str],
        params: Mapping[str, str | int] | None,
        timeout: float,
    ) -> _Attempt:
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                headers=headers,
                params=dict(params) if params else None,
                timeout=timeout,
            )
        except Exception as exc:
            failure = transport_failure(exc)
            if failure is None:
                breaker.trial_in_flight = False  # not the provider's doing; free a trial slot
                raise
            breaker.on_failure()
            return _Attempt(classify(None, failure), f"{failure.value}: {exc!r}")
        except BaseException:
            breaker.trial_in_flight = False  # cancelled: the trial never finished
            raise
        verdict = classify(response.status_code)
        body = _decode(response)
        if verdict is Verdict.SUCCESS and body is _UNREADABLE:
            breaker.on_failure()
            return _Attempt(
                classify(None, Transport.PROTOCOL_ERROR),
                f"{Transport.PROTOCOL_ERROR.value}: {response.status_code} with a body that is "
                "not JSON",
                response,
            )
        code = _code(body) if verdict is not Verdict.SUCCESS else "ok"
        if verdict in (Verdict.RETRY, Verdict.RETRY_AMBIGUOUS):
            breaker.on_failure()
        else:
            breaker.on_success()  # a deliberate answer: the provider is well
        if verdict is Verdict.FINAL and code in self.in_flight_codes:
            # Another attempt with this key (a concurrent caller) is still being processed: it
            # may commit, so wait it out like an ambiguous failure, and never settle `failed`.
            verdict = Verdict.RETRY_AMBIGUOUS
        return _Attempt(verdict, f"{response.status_code} {code}", response, body)

    # --- settling ------------------------------------------------------------------------
    def _succeeded(
        self, intent_id: str | None, key: str | None, outcome: _Attempt, attempts: int
    ) -> ProviderResponse:
        response = outcome.response
        assert response is not None
        if intent_id is not None:
            self.store.settle(
                intent_id,
                IntentStatus.SUCCEEDED,
                result={"status": response.status_code, "body": outcome.body},
            )
        return ProviderResponse(
            status=response.status_code,
            body=outcome.body,
            headers=dict(response.headers),
            idempotency_key=key,
            replayed=response.headers.get("idempotent-replayed", "").lower() == "true",
            attempts=attempts,
        )

    def _refused(self, intent_id: str | None, outcome: _Attempt) -> ProviderRejected:
        """A final answer: the intent settles `failed` (with the answer, to repeat it)."""
        assert outcome.response is not None
        status = outcome.response.status_code
        body = None if outcome.body is _UNREADABLE else outcome.body
        if intent_id is not None:
            self.store.settle(
                intent_id,
                IntentStatus.FAILED,
                result={"status": status, "body": body},
                error=outcome.error,
            )
        return _rejection(status, body, outcome.response.headers)

    def _unavailable(
        self, intent_id: str | None, family: str, ambiguous: bool, attempts: int, error: str
    ) -> ProviderUnavailable:
        """Giving up: the intent stays open for the resumer (`_unsettled`)."""
        self._unsettled(intent_id, ambiguous=ambiguous, error=error)
        return ProviderUnavailable(family, ambiguous=ambiguous, attempts=attempts, last_error=error)

    def _unsettled(self, intent_id: str | None, *, ambiguous: bool, error: str) -> None:
        if intent_id is None:
            return
        current = self.store.intent(intent_id)
        # Once an attempt may have happened, the intent stays ambiguous until resolved.
        was_ambiguous = current is not None and current.status is IntentStatus.AMBIGUOUS
        status = IntentStatus.AMBIGUOUS if ambiguous or was_ambiguous else IntentStatus.PENDING
        self.store.settle(intent_id, status, error=error)


@dataclass(frozen=True, slots=True)
class _CallLog:
    """The one JSON line per attempt (or answer without one) of a call, in
    `sandbank.integration.provider`: what is fixed for the call, and `emit` for each line."""

    family: str
    method: str
    path: str
    intent_id: str | None
    idempotency_key: str | None

    def emit(
        self,
        attempt: int,
        verdict: str,
        status: int | None = None,
        latency_s: float = 0.0,
        level: int = logging.INFO,
        **extra: Any,
    ) -> None:
        logs.emit(
            logs.provider_log,
            "provider_call",
            level,
            family=self.family,
            method=self.method,
            path=self.path,
            intent_id=self.intent_id,
            attempt=attempt,
            verdict=verdict,
            status=status,
            latency_ms=round(latency_s * 1000, 3),
            idempotency_key=self.idempotency_key,
            **extra,
        )

    def attempted(self, attempt: int, outcome: _Attempt, latency_s: float) -> None:
        ok = outcome.verdict is Verdict.SUCCESS
        self.emit(
            attempt,
            outcome.verdict.value,
            None if outcome.response is None else outcome.response.status_code,
            latency_s,
            logging.INFO if ok else logging.WARNING,
            error=None if ok else outcome.error,
        )


_UNREADABLE: Any = object()


def _settled_answer(intent: Intent, trace: _CallLog) -> ProviderResponse | None:
    """The answer of an intent settled earlier, without a request (a key the provider has
    expired must never be re-sent): its stored success, or its final refusal raised again.
    None: the intent is still open, so the call goes to the provider."""
    if intent.result is None:
        return None
    status = int(intent.result["status"])
    if intent.status is IntentStatus.SUCCEEDED:
        trace.emit(0, "from_store", status)
        return ProviderResponse(
            status=status,
            body=intent.result["body"],
            idempotency_key=intent.idempotency_key,
            replayed=True,
            from_store=True,
        )
    if intent.status is IntentStatus.FAILED:
        raise _rejection(status, intent.result["body"], {})
    return None


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return jsonlib.loads(response.content)
    except ValueError:
        return _UNREADABLE


def _code(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return str(body["code"])
    return "unknown"


def _rejection(status: int, body: Any, headers: Mapping[str, str]) -> ProviderRejected:
    detail = ""
    request_id = headers.get("request-id")
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("title") or "")
        request_id = str(body.get("request_id") or request_id or "") or None
    return ProviderRejected(_code(body), status, detail, request_id=request_id)
