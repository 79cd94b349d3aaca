"""Preflight: whether a build with this configuration would run right, checked before it runs.

Offline (the model folders and predictors, no server): per model, the tokenizer loads; its chat
template, rendered with the model's template options, gives a thinking prompt that ends in the
family's assistant header in thinking mode; the template reads every option it is given and the
prompt does not change with the day; the thinking markers are tokens of its tokenizer; the
configured budgets fit its context. Per predictor: it loads, with its window and device.

Online (the servers of the config): each endpoint answers and serves the model, its
`max_model_len` (the budgets are checked again against it), special tokens come back in the
completion text with the settings tessy sends (a one-token probe), and one sample in each
configured mode completes.

Every finding is a `Check` (ok, warn, error, skip). Errors are what would make a build fail or
silently produce different or wasted data; warnings are worth reading (`--strict` makes them
errors too).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tessy_core.config import (
    FAMILY_ASSISTANT_HEADER,
    GenerationConfig,
    Mode,
    ModelConfig,
    PredictorConfig,
)

OK, WARN, ERROR, SKIP = "ok", "warn", "error", "skip"

# The problem every check renders, and the one sample of each mode writes about.
SAMPLE_PROBLEM = (
    "Read a line of integers separated by spaces and print their sum.\n\n"
    "Input: one line with 1 to 100 integers, each between -1000 and 1000.\n"
    "Output: one integer, the sum.\n\nExample: input `1 2 3` gives `6`."
)
# Room left for problems longer than the sample one, in tokens.
PROMPT_MARGIN_TOKENS = 512
# A predictor this large on a CPU cannot keep up with GPU servers (it reads every streamed word).
CPU_PREDICTOR_PARAMS_WARN = 100_000_000
# vLLM accepts at most this many stop strings per request unless the server sets
# VLLM_MAX_STOP_STRINGS (0.32: 4); more is an HTTP 400 for every span request.
VLLM_DEFAULT_MAX_STOP_STRINGS = 4

_MARKER_TOKEN = re.compile(r"<\|[^<>|]+\|>|</?[A-Za-z_]+>")


@dataclass
class Check:
    subject: str  # teacher, student, teacher_predictor, student_predictor, engine, or a server URL
    name: str
    status: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreflightReport:
    checks: list[Check]
    online: bool
    prompts: dict[str, dict[str, str]] = field(default_factory=dict)
    strict: bool = False

    @property
    def errors(self) -> list[str]:
        failing = (ERROR, WARN) if self.strict else (ERROR,)
        return [f"{c.subject} {c.name}: {c.detail}" for c in self.checks if c.status in failing]

    @property
    def warnings(self) -> list[str]:
        return [f"{c.subject} {c.name}: {c.detail}" for c in self.checks if c.status == WARN]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_record(self, show_prompts: bool = False) -> dict[str, Any]:
        record: dict[str, Any] = {
            "ok": self.ok,
            "online": self.online,
            "errors": self.errors,
            "warnings": self.warnings,
            "checks": [asdict(c) for c in self.checks],
        }
        if show_prompts:
            record["prompts"] = self.prompts
        return record


@dataclass
class _ModelFacts:
    """What the offline checks learned about one model, for the budget and online checks."""

    tokenizer: Any = None
    chat: Any = None
    prompt_tokens: int | None = None
    answer_open_tokens: int = 0
    folder_context: int | None = None
    server_context: int | None = None


def _roles_in_mode(mode: Mode) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Who writes thinking and who writes an answer in `mode` (any pass), and whether it interleaves."""
    from tessy_core.engine.modes import mode_plan

    plan = mode_plan(mode)
    return tuple(r.value for r in plan.thinking_roles), tuple(r.value for r in plan.answer_roles), plan.interleaved


class Preflight:
    def __init__(self, config: GenerationConfig, *, problem: str = SAMPLE_PROBLEM, strict: bool = False):
        self.config = config
        self.problem = problem
        self.strict = strict
        self.checks: list[Check] = []
        self.facts: dict[str, _ModelFacts] = {}
        self.prompts: dict[str, dict[str, str]] = {}

    # --- driver ---------------------------------------------------------------------------------

    async def run(self, *, online: bool, sample: bool = True, modes: list[Mode] | None = None,
                  sample_timeout_s: float = 600.0) -> PreflightReport:
        models = {"teacher": self.config.teacher, "student": self.config.student}
        for role, model in models.items():
            self.facts[role] = self._offline_model(role, model)
        for role, predictor in (("teacher", self.config.teacher_predictor), ("student", self.config.student_predictor)):
            self._predictor(f"{role}_predictor", predictor)
        if online:
            for role, model in models.items():
                await self._online_model(role, model, self.facts[role])
        for role in models:
            self._budgets(role, self.facts[role], online)
        if online and sample:
            if any(c.status == ERROR for c in self.checks):
                self._add("engine", "sample", SKIP, "not run: fix the errors above first")
            else:
                for mode in modes or [self.config.engine.mode]:
                    await self._sample(mode, sample_timeout_s)
        return PreflightReport(self.checks, online, self.prompts, self.strict)

    def _add(self, subject: str, name: str, status: str, detail: str, **data: Any) -> Check:
        check = Check(subject, name, status, detail, data)
        self.checks.append(check)
        return check

    # --- offline: one model ---------------------------------------------------------------------

    def _offline_model(self, role: str, model: ModelConfig) -> _ModelFacts:
        from tessy_core.chat import chat_format_for, load_tokenizer
        from tessy_core.engine.factory import context_tokens

        facts = _ModelFacts(folder_context=context_tokens(model))
        try:
            facts.tokenizer = load_tokenizer(model.path, model.revision)
        except Exception as error:  # noqa: BLE001 - any loading problem is the finding
            self._add(role, "tokenizer", ERROR, f"cannot load the tokenizer from {model.path}: {type(error).__name__}: {error}")
            return facts
        self._add(role, "tokenizer", OK, f"{type(facts.tokenizer).__name__} from {model.path}, {len(facts.tokenizer)} tokens")
        try:
            facts.chat = chat_format_for(model, facts.tokenizer)
            generation_prompt = facts.chat.generation_prompt(self.problem)
            thinking_prompt = facts.chat.thinking_prompt(self.problem)
        except Exception as error:  # noqa: BLE001
            self._add(role, "template", ERROR, f"the chat template does not render: {type(error).__name__}: {error}")
            facts.chat = None
            return facts
        self.prompts[role] = {
            "thinking": thinking_prompt,
            "answer": facts.chat.answer_prompt(self.problem, "<the shared thinking>"),
            "assistant": facts.chat.assistant_text("<the shared thinking>", "<the answer>"),
        }
        self._template(role, model, facts, generation_prompt, thinking_prompt)
        self._markers(role, model, facts)
        facts.prompt_tokens = len(facts.tokenizer.encode(thinking_prompt, add_special_tokens=False))
        facts.answer_open_tokens = len(facts.tokenizer.encode(facts.chat.markers.answer_open, add_special_tokens=False))
        return facts

    def _template(self, role: str, model: ModelConfig, facts: _ModelFacts, generation_prompt: str, thinking_prompt: str) -> None:
        from tessy_core.chat import unpinned_date_calls

        markers = facts.chat.markers
        header = FAMILY_ASSISTANT_HEADER[model.family]
        expected_end = header + markers.think_open
        tail = thinking_prompt[-80:]
        if self.problem not in generation_prompt:
            self._add(role, "template", ERROR, "the rendered prompt does not contain the problem verbatim", tail=tail)
        elif not thinking_prompt.endswith(expected_end):
            # A generation prompt that already holds an end-of-thinking marker opens the answer.
            opens_answer = any(marker in generation_prompt[-80:] for marker in markers.think_end)
            why = (
                "opens the final answer itself, so the thinking would be skipped"
                if opens_answer else f"does not end with the assistant header {header!r}"
            )
            self._add(
                role, "template", ERROR,
                f"the thinking prompt must end with {expected_end!r} ({model.family.value}, thinking mode) but ends "
                f"with {tail[-60:]!r}: the template's generation prompt {why}",
                tail=tail,
            )
        else:
            self._add(role, "template", OK, f"the thinking prompt ends with {expected_end!r}", tail=tail)

        original = model.chat_template or facts.tokenizer.get_chat_template()
        source = getattr(facts.chat.generation_prompt_template, "template", None) or original
        options = model.template_options
        unread = [key for key, value in options.kwargs.items() if value is not None and key not in original]
        if unread:
            self._add(role, "template options", WARN,
                      f"the template never reads {', '.join(unread)}: the option has no effect (a wrong template?)")
        if model.family.value == "harmony" and "reasoning_effort" in original and options.kwargs.get("reasoning_effort") is None:
            self._add(role, "template options", WARN,
                      "reasoning_effort is not set: the template's default effort applies (gpt-oss: medium; the paper: high)")
        if unpinned_date_calls(source):
            if options.date is None:
                self._add(role, "date", WARN,
                          "the prompt holds today's date (strftime_now) and template_options.date is not set: a resumed "
                          "or repeated build renders different prompts; pin it")
            else:
                self._add(role, "date", ERROR, "the template computes a date tessy cannot pin (a non-literal "
                          "strftime_now format): the prompt changes with the day")
        elif "strftime_now" in original:
            self._add(role, "date", OK, f"the template's date is pinned to {options.date}")

    def _markers(self, role: str, model: ModelConfig, facts: _ModelFacts) -> None:
        markers = facts.chat.markers
        tokenizer = facts.tokenizer
        strings = [*markers.think_end, markers.think_open, markers.answer_open]
        if markers.message_end:
            strings.append(markers.message_end)
        bad: list[str] = []
        for marker in dict.fromkeys(strings):
            for piece in _MARKER_TOKEN.findall(marker):
                if len(tokenizer.encode(piece, add_special_tokens=False)) != 1:
                    bad.append(piece)
        stops = ", ".join(repr(s) for s in markers.think_end)
        if bad:
            self._add(role, "markers", ERROR,
                      f"{', '.join(sorted(set(bad)))} {'is' if len(set(bad)) == 1 else 'are'} not a token of this "
                      f"tokenizer: the model cannot write its {model.family.value} markers (is `family` right?)")
        elif not markers.think_end:
            self._add(role, "markers", ERROR, "no end-of-thinking marker: the thinking would only end at its token cap")
        else:
            special = set(tokenizer.all_special_tokens)
            kinds = [f"{p!r} ({'special' if p in special else 'text'})" for m in markers.think_end for p in _MARKER_TOKEN.findall(m)]
            self._add(role, "markers", OK, f"the thinking ends at {stops}; single tokens: {', '.join(dict.fromkeys(kinds))}")

    # --- offline: predictors --------------------------------------------------------------------

    def _predictor(self, subject: str, config: PredictorConfig | None) -> None:
        if config is None:
            _, _, interleaved = _roles_in_mode(self.config.engine.mode)
            if interleaved:
                self._add(subject, "load", ERROR,
                          f"mode {self.config.engine.mode.value} needs a boundary predictor for each model")
            return
        if config.kind == "lexicon":
            self._add(subject, "load", OK, f"lexicon of {len(config.phrases)} phrases")
            return
        from tessy_core.predictors import build_predictor

        try:
            predictor = build_predictor(config)
        except Exception as error:  # noqa: BLE001
            self._add(subject, "load", ERROR, f"cannot load {config.path}: {type(error).__name__}: {error}")
            return
        self._stop_strings(subject, predictor)
        model = predictor.model
        params = sum(p.numel() for p in model.parameters())
        positions = getattr(model.config, "max_position_embeddings", None)
        from tessy_core.predictors.learned import METADATA_FILE

        if config.window_tokens:
            window_source = "set in the config"
        elif (Path(config.path) / METADATA_FILE).exists():
            window_source = "trained"
        else:
            window_source = "released default"
        data = {"identity": predictor.identity, "window_tokens": predictor.window_tokens, "window_from": window_source,
                "device": predictor.device, "parameters": params}
        if positions is not None and predictor.window_tokens > positions:
            self._add(subject, "load", ERROR, f"window of {predictor.window_tokens} tokens is longer than the "
                      f"predictor's {positions} positions", **data)
        elif predictor.device == "cpu" and params > CPU_PREDICTOR_PARAMS_WARN:
            self._add(subject, "load", WARN,
                      f"{predictor.identity}: {params / 1e6:.0f}M parameters on the CPU; it reads every streamed word "
                      "and will hold back GPU servers: give this process a GPU (device: auto) or see docs/sizing.md", **data)
        else:
            self._add(subject, "load", OK, f"{predictor.identity}, window {predictor.window_tokens} tokens "
                      f"({window_source}), {params / 1e6:.1f}M parameters on {predictor.device}", **data)

    def _stop_strings(self, subject: str, predictor) -> None:
        """Span requests carry the model's end-of-thinking markers and the predictor's handover stops."""
        handover = tuple(getattr(predictor, "handover_stops", ()) or ())
        if not handover or self.config.engine.span_requests == "fixed":
            return
        model = self.config.teacher if subject.startswith("teacher") else self.config.student
        stops = tuple(dict.fromkeys((*model.thinking_markers.think_end, *handover)))
        if len(stops) > VLLM_DEFAULT_MAX_STOP_STRINGS:
            self._add(subject, "stop strings", WARN,
                      f"span requests will carry {len(stops)} stop strings ({len(handover)} handover stops from the "
                      f"predictor folder): vLLM refuses more than {VLLM_DEFAULT_MAX_STOP_STRINGS} (HTTP 400) unless "
                      f"its servers set VLLM_MAX_STOP_STRINGS>={len(stops)}", stop_strings=len(stops))

    # --- budgets --------------------------------------------------------------------------------

    def _budgets(self, role: str, facts: _ModelFacts, online: bool) -> None:
        writers, answer_roles, _ = _roles_in_mode(self.config.engine.mode)
        if role not in writers and role not in answer_roles:
            return
        if facts.prompt_tokens is None:
            return
        known = [c for c in (facts.folder_context, facts.server_context) if c is not None]
        if not known:
            self._add(role, "budgets", WARN, "the context length is unknown (no max_position_embeddings in the "
                      "folder" + ("" if online else "; run online to ask the servers") + "): budgets cannot be checked")
            return
        context = min(known)
        source = "server max_model_len" if facts.server_context == context else "model folder"
        engine = self.config.engine
        prompt = facts.prompt_tokens + PROMPT_MARGIN_TOKENS
        reserve = facts.answer_open_tokens + engine.max_answer_tokens if role in answer_roles else 0
        thinking = engine.max_thinking_tokens if role in writers or role in answer_roles else 0
        needs = prompt + thinking + reserve
        data = {"context": context, "context_from": source, "prompt_tokens": facts.prompt_tokens,
                "prompt_margin": PROMPT_MARGIN_TOKENS, "max_thinking_tokens": thinking, "answer_reserve": reserve}
        parts = f"prompt {facts.prompt_tokens} + margin {PROMPT_MARGIN_TOKENS} + max_thinking_tokens {thinking}"
        if reserve:
            parts += f" + answer {reserve} (max_answer_tokens and its opener)"
        if needs > context:
            fits = context - prompt - reserve
            self._add(role, "budgets", ERROR,
                      f"{parts} = {needs} tokens exceed the context of {context} ({source}): traces longer than "
                      f"~{max(fits, 0)} thinking tokens would end as context_exhausted. Set engine.max_thinking_tokens "
                      f"to at most {max(fits, 0)}, lower max_answer_tokens, or serve a longer context", **data)
        else:
            self._add(role, "budgets", OK, f"{parts} = {needs} of {context} tokens ({source})", **data)

    # --- online ---------------------------------------------------------------------------------

    async def _online_model(self, role: str, model: ModelConfig, facts: _ModelFacts) -> None:
        if model.backend != "http":
            self._add(role, "server", SKIP, "in-process transformers backend: no server to ask")
            return
        import httpx

        name = model.served_model_name or model.name
        contexts = []
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=5.0),
            headers={"Authorization": f"Bearer {model.api_key}"} if model.api_key else None,
        ) as client:
            for endpoint in model.endpoints:
                base = endpoint.rstrip("/")
                try:
                    response = await client.get(f"{base}/models")
                    entries = response.json().get("data") if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError) as error:
                    self._add(base, "server", ERROR, f"{role}: no answer from {base}/models: {type(error).__name__}: {error}")
                    continue
                if not isinstance(entries, list):
                    self._add(base, "server", ERROR, f"{role}: {base}/models answered HTTP {response.status_code}")
                    continue
                served = {e.get("id"): e for e in entries if isinstance(e, dict)}
                if name not in served:
                    self._add(base, "server", ERROR, f"{role}: serves {sorted(map(str, served))}, not {name!r} "
                              "(served_model_name)")
                    continue
                max_model_len = served[name].get("max_model_len")
                if isinstance(max_model_len, int) and max_model_len > 0:
                    contexts.append(max_model_len)
                self._add(base, "server", OK, f"{role}: serves {name!r}, max_model_len {max_model_len}",
                          max_model_len=max_model_len)
                if facts.chat is not None:
                    await self._special_tokens_probe(role, model, base, facts)
        facts.server_context = min(contexts) if contexts else None

    async def _special_tokens_probe(self, role: str, model: ModelConfig, base: str, facts: _ModelFacts) -> None:
        """One token after the generation prompt, greedy, with exactly the request settings tessy
        sends: the model opens its thinking, and that token must come back as text."""
        from tessy_core.backends.base import BackendError, SamplingParams
        from tessy_core.backends.vllm_http import VllmHttpBackend
        from tessy_core.backends.replicas import RetryPolicy

        chat, tokenizer = facts.chat, facts.tokenizer
        prompt = chat.generation_prompt(self.problem)
        if prompt.endswith(chat.markers.think_open):
            self._add(base, "special tokens", SKIP, f"{role}: the template opens the thinking itself; nothing to probe")
            return
        first_id = tokenizer.encode(chat.markers.think_open, add_special_tokens=False)[0]
        expected = tokenizer.decode([first_id], skip_special_tokens=False)
        special = expected in set(tokenizer.all_special_tokens)
        backend = VllmHttpBackend(
            [base], served_model_name=model.served_model_name or model.name, tokenizer=tokenizer,
            model_id=model.name, api_key=model.api_key, request_timeout_s=60.0,
            retry=RetryPolicy(max_retries=0, outage_wait_s=0), send_seed=False,
        )
        try:
            completion = await backend.complete(prompt, max_tokens=1, sampling=SamplingParams(temperature=0.0, top_p=1.0, top_k=1))
        except BackendError as error:
            self._add(base, "special tokens", ERROR, f"{role}: the one-token probe failed: {error}")
            return
        finally:
            await backend.aclose()
        data = {"expected": expected, "text": completion.text, "tokens": completion.num_tokens,
                "finish_reason": completion.finish_reason}
        if completion.text == expected:
            self._add(base, "special tokens", OK, f"{role}: the model opens its thinking with {expected!r} and it comes "
                      f"back as text{' (a special token)' if special else ''}", **data)
        elif special and completion.text == "" and completion.num_tokens >= 1 and completion.finish_reason == "length":
            self._add(base, "special tokens", ERROR,
                      f"{role}: a generated token came back as empty text: the server or a proxy strips special tokens "
                      f"(expected {expected!r}); tessy cannot see where {model.family.value} thinking ends", **data)
        else:
            self._add(base, "special tokens", WARN,
                      f"{role}: at temperature 0 the model wrote {completion.text!r} where its thinking opens with "
                      f"{expected!r}: the template or family may not be the model's own", **data)

    async def _sample(self, mode: Mode, timeout_s: float) -> None:
        from tessy_core.engine import SampleRequest, open_decoder

        subject = f"mode {mode.value}"
        started = time.perf_counter()
        try:
            async with open_decoder(self.config, mode) as decoder:
                result = await asyncio.wait_for(
                    decoder.generate(SampleRequest(sample_id=f"preflight-{mode.value}", prompt_id="preflight", problem=self.problem)),
                    timeout_s,
                )
        except asyncio.TimeoutError:
            self._add(subject, "sample", ERROR, f"one sample did not finish in {timeout_s:g} s")
            return
        except Exception as error:  # noqa: BLE001
            self._add(subject, "sample", ERROR, f"the decoder did not open: {type(error).__name__}: {error}")
            return
        data = {"wall_s": round(time.perf_counter() - started, 2), "attempts": result.attempts,
                "spans": len(result.spans), "requests": sum(u.requests for u in result.usage.values()),
                "teacher_token_share": round(result.teacher_token_share, 3)}
        if result.ok:
            self._add(subject, "sample", OK, f"completed: {len(result.spans)} spans, {data['requests']} requests, "
                      f"{result.attempts} attempt(s), {data['wall_s']} s", **data)
        else:
            self._add(subject, "sample", ERROR, f"failed after {result.attempts} attempt(s): {result.failure_reason}",
                      attempt_failures=result.attempt_failures, **data)


def run_preflight(config: GenerationConfig, *, online: bool, sample: bool = True, modes: list[Mode] | None = None,
                  problem: str = SAMPLE_PROBLEM, strict: bool = False, sample_timeout_s: float = 600.0) -> PreflightReport:
    """Run the checks (see the module docstring) and return every finding."""
    return asyncio.run(
        Preflight(config, problem=problem, strict=strict).run(
            online=online, sample=sample, modes=modes, sample_timeout_s=sample_timeout_s
        )
    )


def load_any_generation_config(path) -> GenerationConfig:
    """The generation config of a build YAML (BuildConfig) or of a generation YAML."""
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    if isinstance(data, dict) and "dataset" in data and "generation" in data:
        from tessy_core.builder.config import BuildConfig

        return BuildConfig.model_validate(data).generation
    if isinstance(data, dict) and "generation" in data:
        data = data["generation"]
    return GenerationConfig.model_validate(data)
