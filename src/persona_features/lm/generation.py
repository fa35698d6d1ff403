"""Batched answer sampling from a chat model.

Prompts are batched by length and left-padded; each batch is seeded from ``seed`` and its
index, so the same profile and seed give the same answers on the same machine.
``SAMPLER_VERSION`` enters the key of every cached artifact that holds sampled answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import Cache, DynamicCache
from transformers.cache_utils import DynamicLayer

from persona_features.core.params import Params
from persona_features.lm.models import LoadedModel, to_host

Forward = Callable[..., torch.Tensor]  # model keyword inputs -> logits [batch, seq, vocab]
PROMPT_PASS = "logits_to_keep"  # the keyword the sampler's prompt passes carry and its decoding steps do not
QUESTION = "question"  # the keyword a per-question forward receives: each row's question (an index)
SAMPLER_VERSION = 3  # 1: transformers generate; 2: our loop (shared prefix, in-place cache, inverse-CDF draws);
                     # 3: a prompt several rows hold runs once


@dataclass(frozen=True)
class Sampling:
    """Everything that decides which answers the sampler draws. A cached step that holds sampled answers
    keys on all of it (``key``) and samples with it (``kwargs``), so no setting can change the answers
    without changing the key."""
    temperature: float
    max_new_tokens: int
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 16  # each batch is seeded from the seed and its index: the batch size changes the draws
    sampler: int = SAMPLER_VERSION

    @classmethod
    def of(cls, P: Params, temperature: float | None = None, max_new_tokens: int | None = None,
           seed: int | None = None) -> Sampling:
        """The profile's sampling (``top_p``, ``seed``, ``batch_size``) at ``temperature`` (default the
        profile's) and ``max_new_tokens`` (default ``eval_max_new_tokens``)."""
        return cls(temperature=float(P.temperature if temperature is None else temperature),
                   max_new_tokens=P.eval_max_new_tokens if max_new_tokens is None else max_new_tokens,
                   top_p=P.top_p, seed=P.seed if seed is None else seed, batch_size=P.batch_size)

    def key(self) -> dict:
        return asdict(self)

    def kwargs(self) -> dict:
        """The sampler's keyword arguments (``sample_answers``, ``evaluate.evaluate``)."""
        return {k: v for k, v in asdict(self).items() if k != "sampler"}


@dataclass(frozen=True)
class Answer:
    question_id: str
    question: str
    sample: int
    answer: str
    n_tokens: int
    finished: bool  # ended with end-of-turn before max_new_tokens
    # mean untempered log-probability per token under the sampling model, when the answer's text
    # re-tokenises to exactly the sampled tokens (so a likelihood-based judge can reuse it); else NaN
    logprob: float


def _answer_lengths(new_tokens: torch.Tensor, stop_ids: set[int]) -> tuple[list[int], list[bool]]:
    lengths, finished = [], []
    for row in new_tokens.tolist():
        stop = next((i for i, t in enumerate(row) if t in stop_ids), None)
        lengths.append(len(row) if stop is None else stop)
        finished.append(stop is not None)
    return lengths, finished


def _stop_ids(lm: LoadedModel) -> set[int]:
    ids = lm.hf.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | {lm.tokenizer.eos_token_id}


def _pick_tokens(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """One token per row: argmax when temperature == 0, else a draw from the tempered nucleus."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        ranked, order = probs.sort(dim=-1, descending=True)
        mass_before = ranked.cumsum(-1) - ranked  # a token stays while the mass above it is < top_p
        ranked = ranked.masked_fill(mass_before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, ranked)
    # Inverse-CDF draw: the same distribution as torch.multinomial, which spent ~90 ms per call here.
    cdf = probs.cumsum(-1)
    u = torch.rand(len(cdf), 1, dtype=cdf.dtype, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp(max=cdf.shape[1] - 1)


class _BufferLayer(DynamicLayer):
    """A key-value cache layer that writes into one buffer allocated up front.

    transformers' dynamic cache concatenates every step, copying the whole cache each time;
    on a CPU that cost a third of every decoding step.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._k = key_states.new_empty(*key_states.shape[:2], self.capacity, key_states.shape[3])
            self._v = value_states.new_empty(*value_states.shape[:2], self.capacity, value_states.shape[3])
        end = self.length + key_states.shape[-2]
        self._k[:, :, self.length:end] = key_states
        self._v[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def _select(self, pick) -> None:
        self._k, self._v = pick(self._k), pick(self._v)
        self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._select(lambda t: t[indices])

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._select(lambda t: t.expand(repeats, *t.shape[1:]).contiguous())


def shared_prefix(rows: list[list[int]]) -> int:
    """Tokens that every row starts with, leaving each row at least one token of its own."""
    n = min(len(r) for r in rows) - 1
    for i, column in enumerate(zip(*rows)):
        if i >= n or len(set(column)) > 1:
            return i
    return n


def shareable_prefix(lm: LoadedModel, rows: list[list[int]], new_tokens: int = 0) -> int:
    """``shared_prefix(rows)`` where running it once is exact, else 0 (and 0 for a single row).

    A shared start leaves padding between it and a row's own tokens. Masked padding changes nothing under full
    attention, but a sliding window counts it, so on a windowed model (``attention_window``) the prefix is shared
    only if every position, ``new_tokens`` generated ones included, stays within the window.
    """
    window = lm.attention_window
    if len(rows) < 2 or (window is not None and max(map(len, rows)) + new_tokens > window):
        return 0
    return shared_prefix(rows)


Hidden = Callable[[dict, torch.Tensor], torch.Tensor]  # (model inputs, answer mask [batch, seq]) -> last hidden state


@torch.inference_mode()
def final_hidden(lm: LoadedModel, rows: Sequence[list[int]], own_at_least: Sequence[int], run: Hidden | None = None,
                 answer_tokens: Sequence[int] | None = None) -> torch.Tensor:
    """Last-layer hidden states of token ``rows`` after the prefix they all share, ``[batch, width, d]``.

    The shared prefix (the chat template's start) is run once, for a batch of one; each row's
    remaining tokens are left-padded, so row ``i``'s last ``k`` tokens sit at ``[i, width - k:]``.
    Row ``i`` keeps at least ``own_at_least[i]`` tokens of its own. ``run`` computes each pass
    (default: the plain model), told which positions hold each row's last ``answer_tokens[i]``
    tokens (``steering`` edits only those for an answer-only steer).
    """
    run = run or (lambda inputs, answer: lm.hf.model(**inputs).last_hidden_state)
    limit = min(len(r) - k for r, k in zip(rows, own_at_least))
    shared = min(shareable_prefix(lm, list(rows)), limit)
    cache = DynamicCache()
    if shared > 0:
        run({"input_ids": torch.tensor([rows[0][:shared]], device=lm.device), "past_key_values": cache,
             "use_cache": True}, torch.zeros(1, shared, dtype=torch.bool, device=lm.device))
        cache.batch_repeat_interleave(len(rows))
    ids, mask = pad_left([r[shared:] for r in rows], shared, lm.tokenizer.pad_token_id, lm.device)
    positions = (mask.cumsum(1) - 1).clamp(min=0)[:, shared:]
    answer = torch.zeros(ids.shape, dtype=torch.bool, device=lm.device)
    for i, k in enumerate(answer_tokens or []):
        answer[i, ids.shape[1] - k:] = k > 0
    return run({"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                "past_key_values": cache if shared > 0 else None, "use_cache": shared > 0}, answer)


def pad_left(own: list[list[int]], shared: int, pad: int,
             device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's own tokens, left-padded, on ``device`` (default torch's); the mask also covers the ``shared``
    tokens before them."""
    width = max(map(len, own))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in own], device=device)
    mask = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in own], device=device)
    return ids, mask


def _plain_logits(lm: LoadedModel) -> Forward:
    return lambda **inputs: lm.hf(**inputs).logits


def _per_question(forward: Forward | None) -> bool:
    """Does ``forward`` act per question (``steering.per_question_forward``)? Then its ``groups`` give each
    question's group: rows of one group share passes where their tokens agree; rows of two do not."""
    return getattr(forward, "groups", None) is not None


def _question(questions: torch.Tensor | None, rows: torch.Tensor) -> dict:
    """The keyword that gives a per-question forward the question of each of ``rows`` (none for a plain one)."""
    return {} if questions is None else {QUESTION: questions[rows]}


def _prefill(lm: LoadedModel, texts: Sequence[str], max_new_tokens: int, forward: Forward,
             questions: torch.Tensor | None = None):
    """Run the prompts once; returns the cache, the attention mask, the last logits and next positions.

    The chat template's shared start (system prompt and role markers) is computed once, for a
    batch of one, and copied to every row. The rest is padded on the left of each row's own
    part, so padding sits between the shared start and the question; the mask and the positions
    make that identical to a plain left-padded batch. A prompt that several rows hold (samples of
    one question) is run once, and its cache and last logits copied to each of them. ``questions``:
    each row's question, for a per-question forward; the shared start is then run once per group.
    """
    rows = [lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    # a per-question forward's groups (``_per_question``)
    group = [forward.groups[q] for q in questions.tolist()] if questions is not None else [0] * len(rows)  # type: ignore[attr-defined]
    shared = shareable_prefix(lm, rows, max_new_tokens)
    keys = list(zip(map(tuple, rows), group))
    distinct: dict[tuple, int] = {}  # each distinct (prompt, group), and a row holding it
    firsts: list[int] = []
    for i, key in enumerate(keys):
        if key not in distinct:
            distinct[key] = len(distinct)
            firsts.append(i)
    copy_of = torch.tensor([distinct[key] for key in keys], device=lm.device)
    first = torch.tensor(firsts, device=lm.device)
    own = [list(tokens[shared:]) for tokens, _ in distinct]
    capacity = max(map(len, rows)) + max_new_tokens
    cache = Cache(layers=[_BufferLayer(capacity) for _ in range(lm.n_layers)])
    if shared:
        heads: dict = {}  # group -> the first distinct prompt in it
        for d, (_, g) in enumerate(distinct):
            heads.setdefault(g, d)
        forward(input_ids=torch.tensor([rows[0][:shared]] * len(heads), device=lm.device), past_key_values=cache,
                use_cache=True, **{PROMPT_PASS: 1}, **_question(questions, first[list(heads.values())]))
        if len(heads) == 1:
            cache.batch_repeat_interleave(len(own))
        else:
            cache.batch_select_indices(torch.tensor([list(heads).index(g) for _, g in distinct], device=lm.device))
    ids, mask = pad_left(own, shared, lm.tokenizer.pad_token_id, lm.device)
    positions = (mask.cumsum(1) - 1).clamp(min=0)[:, shared:]
    logits = forward(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                     use_cache=True, **{PROMPT_PASS: 1}, **_question(questions, first))[:, -1]
    if len(own) < len(rows):
        cache.batch_select_indices(copy_of)
    return cache, mask[copy_of], logits[copy_of], positions[copy_of, -1:] + 1


def _decode(lm: LoadedModel, texts: Sequence[str], max_new_tokens: int, temperature: float, top_p: float,
            forward: Forward | None, questions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """New tokens ``[batch, max_new_tokens]`` and each one's untempered log-probability (NaN after the stop).

    ``questions``: each text's question, for a per-question forward (default: each text its own). Both come back
    on the host."""
    forward = forward or _plain_logits(lm)
    if _per_question(forward) and questions is None:
        questions = torch.arange(len(texts), device=lm.device)
    cache, mask, logits, position = _prefill(lm, texts, max_new_tokens, forward, questions)
    out = torch.full((len(texts), max_new_tokens), lm.tokenizer.pad_token_id, dtype=torch.long, device=lm.device)
    logprobs = torch.full((len(texts), max_new_tokens), float("nan"), device=lm.device)
    stop = torch.tensor(sorted(_stop_ids(lm)), device=lm.device)
    rows = torch.arange(len(texts), device=lm.device)  # output row of each live batch row
    for step in range(max_new_tokens):
        token = _pick_tokens(logits, temperature, top_p)
        out[rows, step] = token
        logprobs[rows, step] = torch.log_softmax(logits.float(), dim=-1).gather(1, token[:, None]).squeeze(1)
        live = ~torch.isin(token, stop)
        if step == max_new_tokens - 1 or not live.any():
            break
        if not live.all():
            keep = live.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, token, mask, position = rows[keep], token[keep], mask[keep], position[keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        logits = forward(input_ids=token[:, None], attention_mask=mask, position_ids=position,
                         past_key_values=cache, use_cache=True,
                         **_question(questions, rows))[:, -1]
        position = position + 1
    return to_host(out), to_host(logprobs)


@torch.inference_mode()
def generate_batch(
    lm: LoadedModel, texts: Sequence[str], max_new_tokens: int, temperature: float, top_p: float = 1.0,
    forward: Forward | None = None,
) -> torch.Tensor:
    """New tokens ``[batch, max_new_tokens]`` for prompt texts (greedy when temperature == 0), pad after the stop.

    A key-value-cached decoding loop, faster than ``generate`` on a CPU: the chat template's
    shared start is computed once, the cache is written in place, and each row leaves the batch
    once it has ended its turn. ``forward`` maps the model's keyword inputs to its logits; the
    default is the plain model, and ``steering.steered_forward`` runs each step under nnsight.
    """
    return _decode(lm, texts, max_new_tokens, temperature, top_p, forward)[0]


@torch.inference_mode()
def reference_generate_batch(
    lm: LoadedModel, texts: Sequence[str], max_new_tokens: int, temperature: float, top_p: float = 1.0
) -> torch.Tensor:
    """The same as :func:`generate_batch`, through transformers' ``generate`` (the benchmark's baseline)."""
    enc = lm.encode(texts)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {
        "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    out = lm.hf.generate(  # type: ignore[operator]
        **enc, max_new_tokens=max_new_tokens, min_new_tokens=0, pad_token_id=lm.tokenizer.pad_token_id, **sampling
    )
    new = out[:, enc["input_ids"].shape[1]:]
    pad = torch.full((new.shape[0], max_new_tokens - new.shape[1]), lm.tokenizer.pad_token_id, dtype=new.dtype,
                     device=new.device)
    return to_host(torch.cat([new, pad], dim=1))


def sample_answers(
    lm: LoadedModel,
    questions: Sequence[tuple[str, str]],
    n_samples: int,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    system: str | None | Sequence[str | None] = None,
    desc: str = "sampling",
    forward: Forward | None = None,
) -> pd.DataFrame:
    """Sample ``n_samples`` answers to each ``(question_id, question)``; one row per answer, in order.

    ``system``: one system prompt for every question, or a list with one per question. ``forward``: the
    model's forward pass (default plain); a per-question one (``steering.per_question_forward``) treats
    each question its own way, so that answers under many settings share batches.
    """
    if n_samples < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("n_samples, batch_size and max_new_tokens must be >= 1")
    systems = [system] * len(questions) if system is None or isinstance(system, str) else list(system)
    if len(systems) != len(questions):
        raise ValueError(f"{len(systems)} system prompts for {len(questions)} questions; give one, or one per question")
    jobs = [(qid, q, s, lm.chat_text(q, sys_prompt), i)
            for i, ((qid, q), sys_prompt) in enumerate(zip(questions, systems))
            for s in range(n_samples)]
    order = sorted(range(len(jobs)), key=lambda i: len(jobs[i][3]))  # similar lengths waste less on padding
    jobs = [jobs[i] for i in order]
    stop_ids = _stop_ids(lm)
    rows: list[Answer] = []
    for b, start in enumerate(tqdm(range(0, len(jobs), batch_size), desc=desc, unit="batch")):
        batch = jobs[start:start + batch_size]
        torch.manual_seed(seed * 1_000_003 + b)
        with torch.inference_mode():
            new, logprobs = _decode(lm, [job[3] for job in batch], max_new_tokens, temperature, top_p, forward,
                                    torch.tensor([job[4] for job in batch], device=lm.device)
                                    if _per_question(forward) else None)
        lengths, finished = _answer_lengths(new, stop_ids)
        for (qid, q, s, _, _), row, lp, n, done in zip(batch, new, logprobs, lengths, finished):
            text = str(lm.tokenizer.decode(row[:n], skip_special_tokens=True)).strip()
            same = n > 0 and lm.tokenizer(text, add_special_tokens=False)["input_ids"] == row[:n].tolist()
            rows.append(Answer(qid, q, s, text, n, done, lp[:n].mean().item() if same else float("nan")))
    in_order = [asdict(r) for _, r in sorted(zip(order, rows), key=lambda pair: pair[0])]
    return pd.DataFrame(in_order)


def greedy_padding_check(lm: LoadedModel, texts: Sequence[str], max_new_tokens: int) -> list[bool]:
    """For each prompt: are its greedy tokens in a left-padded batch the same as when run alone?"""
    batched = generate_batch(lm, texts, max_new_tokens, temperature=0.0)
    return [torch.equal(batched[i], generate_batch(lm, [t], max_new_tokens, temperature=0.0)[0])
            for i, t in enumerate(texts)]
