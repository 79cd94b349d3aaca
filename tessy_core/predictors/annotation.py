"""Labels from an annotator LLM: cut thinking traces into windows, ask for the exact style phrases as
a JSON array, align the phrases to the window text, and stitch accepted windows back into labelled
text.

Annotators return messy text. `parse_phrases` copes with: a reasoning block before the answer, code
fences, prose before or after the JSON, objects instead of strings, and output cut off mid-array
(the complete phrases are salvaged and the window is cut after the last of them, since nothing is
known about the text beyond). `align_phrases` finds the phrases in order (a phrase occurring several
times is matched at its next occurrence, whole words only), tolerating typographic quote/dash/space
differences, and ignores an exact repeat the annotator listed twice. A window whose reply has no
JSON array, or with a phrase that cannot be found, is dropped and counted.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from typing import Awaitable, Callable, Iterable, Literal, Protocol, Sequence

import httpx
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.predictors.labels import LabelledText

DEFAULT_PROMPT = """You label the style of reasoning text.

Style phrases are discourse, tone, hedges and transitions (for example "Okay, so", "Wait,", "Hmm",
"Let me think", "I think", "for example", "But if"). Everything that does the work (analysis,
formulas, numbers, code) is capability and must not be listed.

Return ONLY a JSON array of the style phrases of the text below, copied exactly as they appear,
in the order they appear; list a phrase again each time it occurs. Return [] if there are none.

Text:
<<<
{text}
>>>"""


class AnnotationStatus(str, Enum):
    accepted = "accepted"
    salvaged = "salvaged"  # truncated reply: labelled up to its last complete phrase
    invalid_json = "invalid_json"
    unmatched = "unmatched"
    request_failed = "request_failed"


class AnnotationError(ValueError):
    def __init__(self, status: AnnotationStatus, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ParsedReply:
    phrases: list[str]
    truncated: bool = False


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
_PHRASE_KEYS = ("phrase", "text", "span", "style")


def _as_phrase(element: object) -> str:
    if isinstance(element, str):
        return element
    if isinstance(element, dict):
        for key in _PHRASE_KEYS:
            if isinstance(element.get(key), str):
                return element[key]
    raise AnnotationError(AnnotationStatus.invalid_json, f"array element is not a phrase: {element!r:.80}")


def _salvage_truncated(fragment: str) -> list[str]:
    """The complete strings of an array of strings that runs to the end of the reply ([] when the
    fragment is not such an array)."""
    decoder = json.JSONDecoder()
    position = fragment.index("[") + 1
    phrases: list[str] = []
    while True:
        while position < len(fragment) and fragment[position] in " \t\r\n,":
            position += 1
        if position >= len(fragment):
            return phrases
        if fragment[position] != '"':
            return []  # something other than phrases: a malformed array, not a cut-off one
        try:
            value, position = decoder.raw_decode(fragment, position)
        except json.JSONDecodeError:
            return phrases  # the reply was cut inside this string
        phrases.append(value)


def parse_phrases(reply: str) -> ParsedReply:
    """The style phrases in an annotator's reply; raises AnnotationError(invalid_json) when there is
    no JSON array of phrases in it."""
    text = _THINK_BLOCK.sub("", reply)
    if "</think>" in text.lower():  # a reasoning block whose opening tag was in the prompt
        text = text[text.lower().rindex("</think>") + len("</think>") :]
    candidates = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for match in re.finditer(r"\[", candidate):
            try:
                value, _ = decoder.raw_decode(candidate, match.start())
            except json.JSONDecodeError:
                continue
            if isinstance(value, list) and all(isinstance(v, (str, dict)) for v in value):
                try:
                    return ParsedReply([_as_phrase(v) for v in value])
                except AnnotationError:
                    continue
    # No complete array: maybe the reply was cut off inside one.
    for candidate in candidates:
        opening = re.search(r"\[\s*\"", candidate)
        if opening is not None:
            salvaged = _salvage_truncated(candidate[opening.start() :])
            if salvaged:
                return ParsedReply(salvaged, truncated=True)
    raise AnnotationError(AnnotationStatus.invalid_json, f"no JSON array of phrases in the reply: {reply[:120]!r}")


_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2026": "\u2026",
}


def _fold_char(char: str) -> str:
    """One character for one character, so offsets in the folded text are offsets in the original."""
    if char in _FOLD:
        return _FOLD[char]
    normalized = unicodedata.normalize("NFKC", char)
    return normalized if len(normalized) == 1 else char


def _fold(text: str) -> str:
    return "".join(_fold_char(c) for c in text)


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    folded = unicodedata.normalize("NFC", phrase)
    folded = _fold(folded).strip()
    parts = [re.escape(piece) for piece in re.split(r"\s+", folded)]
    body = r"\s+".join(parts)
    if folded[:1].isalnum() or folded[:1] == "_":
        body = r"(?<!\w)" + body
    if folded[-1:].isalnum() or folded[-1:] == "_":
        body += r"(?!\w)"
    return re.compile(body)


@dataclass
class Alignment:
    spans: list[tuple[int, int]] = field(default_factory=list)
    repeats_ignored: int = 0


def align_phrases(text: str, phrases: Sequence[str]) -> Alignment:
    """Character spans of `phrases` in `text`, matched in order; raises AnnotationError(unmatched)
    for a phrase that does not occur after the previous one."""
    haystack = _fold(text)  # same length as `text`: match offsets are text offsets
    alignment = Alignment()
    cursor = 0
    aligned: set[str] = set()
    for phrase in phrases:
        if not phrase.strip():
            continue
        pattern = _phrase_pattern(phrase)
        match = pattern.search(haystack, cursor)
        if match is None:
            if phrase in aligned:
                alignment.repeats_ignored += 1
                continue
            raise AnnotationError(AnnotationStatus.unmatched, f"phrase not found in order: {phrase!r:.80}")
        alignment.spans.append((match.start(), match.end()))
        aligned.add(phrase)
        cursor = match.end()
    return alignment


@dataclass(frozen=True)
class TextWindow:
    """A piece of a trace: `trace_id`, its position `index`, and its character range in the trace."""

    trace_id: str
    index: int
    start: int
    end: int
    text: str

    @property
    def window_id(self) -> str:
        return f"{self.trace_id}#{self.index}"


def cut_windows(trace_id: str, text: str, words: int = 60) -> list[TextWindow]:
    """Consecutive windows of about `words` words that tile `text` exactly (each keeps the spaces
    after its last word, so joining the windows gives the text back)."""
    if words < 1:
        raise ValueError("words must be at least 1")
    word_starts = [m.start() for m in re.finditer(r"\S+", text)]
    if not word_starts:
        return []
    cuts = [0] + word_starts[words::words] + [len(text)]
    return [
        TextWindow(trace_id, index, start, end, text[start:end])
        for index, (start, end) in enumerate(zip(cuts, cuts[1:]))
        if start < end
    ]


class WindowAnnotation(BaseModel):
    """The outcome of annotating one window (one line of the annotations file)."""

    model_config = ConfigDict(extra="forbid")

    window_id: str
    trace_id: str
    index: int
    start: int
    end: int
    status: AnnotationStatus
    reason: str | None = None
    # Accepted/salvaged: spans relative to the window; `labelled_end` is where the labels stop
    # (the window's length, or the end of the last phrase of a truncated reply).
    spans: list[tuple[int, int]] = Field(default_factory=list)
    labelled_end: int | None = None
    repeats_ignored: int = 0
    reply: str | None = None


def label_window(window: TextWindow, reply: str) -> WindowAnnotation:
    """Parse and align one reply. Never raises for bad replies: the outcome says why it was dropped."""
    base = dict(window_id=window.window_id, trace_id=window.trace_id, index=window.index, start=window.start, end=window.end)
    try:
        parsed = parse_phrases(reply)
        alignment = align_phrases(window.text, parsed.phrases)
    except AnnotationError as error:
        return WindowAnnotation(**base, status=error.status, reason=error.reason, reply=reply[:2000])
    if parsed.truncated:
        labelled_end = alignment.spans[-1][1] if alignment.spans else 0
        if labelled_end == 0:
            return WindowAnnotation(**base, status=AnnotationStatus.invalid_json, reason="truncated reply with no phrase", reply=reply[:2000])
        return WindowAnnotation(
            **base, status=AnnotationStatus.salvaged, reason="truncated reply", spans=alignment.spans,
            labelled_end=labelled_end, repeats_ignored=alignment.repeats_ignored,
        )
    return WindowAnnotation(
        **base, status=AnnotationStatus.accepted, spans=alignment.spans, labelled_end=len(window.text),
        repeats_ignored=alignment.repeats_ignored,
    )


def stitch(traces: dict[str, str], annotations: Iterable[WindowAnnotation]) -> list[LabelledText]:
    """Labelled texts from annotated windows: consecutive usable windows of one trace are joined
    back into one text (the predictor then learns from long contexts, as the engine uses it); a
    dropped or truncated window ends the run."""
    by_trace: dict[str, list[WindowAnnotation]] = {}
    for annotation in annotations:
        by_trace.setdefault(annotation.trace_id, []).append(annotation)
    out: list[LabelledText] = []
    for trace_id in sorted(by_trace):
        text = traces[trace_id]
        run_start: int | None = None
        spans: list[tuple[int, int]] = []
        previous_end = None

        def flush(end: int) -> None:
            nonlocal run_start, spans
            if run_start is not None and end > run_start:
                out.append(LabelledText(text[run_start:end], [(s - run_start, e - run_start) for s, e in spans]))
            run_start, spans = None, []

        for annotation in sorted(by_trace[trace_id], key=lambda a: a.index):
            usable = annotation.status in (AnnotationStatus.accepted, AnnotationStatus.salvaged)
            if not usable or (previous_end is not None and annotation.start != previous_end):
                flush(previous_end if previous_end is not None else 0)
            if not usable:
                previous_end = None
                continue
            if run_start is None:
                run_start = annotation.start
            spans.extend((annotation.start + s, annotation.start + e) for s, e in annotation.spans)
            previous_end = annotation.start + (annotation.labelled_end or 0)
            if annotation.status == AnnotationStatus.salvaged:
                flush(previous_end)
                previous_end = None
        flush(previous_end if previous_end is not None else 0)
    return out


class AnnotationStats(BaseModel):
    model_config = ConfigDict(extra="forbid")

    windows: int = 0
    accepted: int = 0
    salvaged: int = 0
    invalid_json: int = 0
    unmatched: int = 0
    request_failed: int = 0
    repeats_ignored: int = 0

    @property
    def rejected(self) -> int:
        return self.invalid_json + self.unmatched

    @property
    def rejected_share(self) -> float:
        """Share of answered windows dropped for invalid JSON or unmatched phrases."""
        answered = self.windows - self.request_failed
        return self.rejected / answered if answered else 0.0

    @classmethod
    def of(cls, annotations: Iterable[WindowAnnotation]) -> "AnnotationStats":
        stats = cls()
        for annotation in annotations:
            stats.windows += 1
            setattr(stats, annotation.status.value, getattr(stats, annotation.status.value) + 1)
            stats.repeats_ignored += annotation.repeats_ignored
        return stats

    def summary(self) -> dict[str, float | int]:
        return {**self.model_dump(), "rejected": self.rejected, "rejected_share": self.rejected_share}


class Annotator(Protocol):
    """Anything that answers a window of thinking text with the annotator's raw reply."""

    async def annotate(self, text: str) -> str: ...

    async def aclose(self) -> None: ...


class AnnotatorConfig(BaseModel):
    """An OpenAI-compatible annotator endpoint."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    model: str
    api: Literal["chat", "completions"] = "chat"
    api_key: str | None = None
    prompt: str = Field(DEFAULT_PROMPT, description="the request; `{text}` is replaced by the window")
    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0)
    concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0)

    def render(self, text: str) -> str:
        if "{text}" not in self.prompt:
            raise ValueError("the annotator prompt must contain {text}")
        return self.prompt.replace("{text}", text)


class OpenAIAnnotator:
    """Asks an OpenAI-compatible server (vLLM, SGLang, a hosted API) for the style phrases."""

    def __init__(self, config: AnnotatorConfig, transport: httpx.AsyncBaseTransport | None = None):
        config.render("")  # fail on a bad prompt now, not per window
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {config.api_key}"} if config.api_key else None,
            timeout=config.timeout_s,
            transport=transport,
        )
        self.requests = 0

    async def annotate(self, text: str) -> str:
        prompt = self.config.render(text)
        if self.config.api == "chat":
            path = "chat/completions"
            body = {"model": self.config.model, "messages": [{"role": "user", "content": prompt}]}
        else:
            path, body = "completions", {"model": self.config.model, "prompt": prompt}
        body.update(max_tokens=self.config.max_tokens, temperature=self.config.temperature)
        last_error: Exception | None = None
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
            try:
                self.requests += 1
                response = await self._client.post(path, json=body)
            except httpx.TransportError as error:
                last_error = error
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last_error = RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            if response.status_code >= 400:
                raise RuntimeError(f"annotator refused the request: HTTP {response.status_code}: {response.text[:300]}")
            choice = response.json()["choices"][0]
            return (choice["message"]["content"] or "") if self.config.api == "chat" else choice["text"]
        raise RuntimeError(f"annotator unreachable after {self.config.max_retries + 1} attempts: {last_error}")

    async def aclose(self) -> None:
        await self._client.aclose()


async def annotate_windows(
    annotator: Annotator,
    windows: Sequence[TextWindow],
    *,
    concurrency: int = 8,
    on_result: Callable[[WindowAnnotation], Awaitable[None] | None] | None = None,
) -> list[WindowAnnotation]:
    """Annotate every window (at most `concurrency` in flight). A request that fails after the
    annotator's own retries is recorded as `request_failed`, never lost and never fatal."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(window: TextWindow) -> WindowAnnotation:
        async with semaphore:
            try:
                reply = await annotator.annotate(window.text)
            except Exception as error:  # recorded per window; the run goes on
                result = WindowAnnotation(
                    window_id=window.window_id, trace_id=window.trace_id, index=window.index, start=window.start,
                    end=window.end, status=AnnotationStatus.request_failed, reason=f"{type(error).__name__}: {error}",
                )
            else:
                result = label_window(window, reply)
        if on_result is not None:
            maybe = on_result(result)
            if asyncio.iscoroutine(maybe):
                await maybe
        return result

    return list(await asyncio.gather(*(one(window) for window in windows)))
