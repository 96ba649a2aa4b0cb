"""Knowledge retrieval, timed: `python bench/knowledge.py` (about a minute).

Builds --chunks chunks (100,000) for one agent in a temporary database through hookd's own
code — generated Markdown documents, cut by agents/knowledge.py, stored and indexed by
SQLiteStore.add_source — then times --queries searches (200) of varied questions through
SQLiteStore.search_chunks, the call a run makes before it asks the model. Prints the median
and p95 beside the target (median ≤ 20 ms) with PASS or FAIL; the exit code is 0 either way.

The text: a Zipf-distributed vocabulary (exponent 1.07, like English) of 30,000 words, the
most frequent being English function words, the rest generated; questions draw 5–15 words
from the same distribution, so most hold a few common words that match thousands of chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.agent import validate_agent_fields
from agents.knowledge import PreparedSource, prepare_source, search_terms
from agents.tokens import new_token
from tasks.sqlite.store import SQLiteStore

TARGET_MS = 20.0
VOCABULARY = 30_000
ZIPF_EXPONENT = 1.07
_FUNCTION_WORDS = (
    "the of and to a in is it you that he was for on are with as i his they be at one have this from"
    " or had by not word but what some we can out other were all there when up use your how said an"
    " each she which do their time if will way about many then them write would like so these her"
    " long make thing see him two has look more day could go come did number sound no most people my"
    " over know water than call first who may down side been now find"
)
FUNCTION_WORDS = _FUNCTION_WORDS.split()
_SYLLABLES = (
    "ka ro mi ten sa lo ver pa din el or ast qu ber ni tor gal um fe zi mon ra ex pli cor dus ven ta li ne"
)
SYLLABLES = _SYLLABLES.split()


class Corpus:
    """Words drawn by rank from a Zipf distribution."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        words = list(FUNCTION_WORDS)
        seen = set(words)
        while len(words) < VOCABULARY:
            word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 3, 4))))
            if word not in seen:
                seen.add(word)
                words.append(word)
        self.words = words
        self.cum_weights = list(
            itertools.accumulate(1 / (rank + 1) ** ZIPF_EXPONENT for rank in range(VOCABULARY))
        )

    def draw(self, count: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum_weights, k=count)

    def paragraph(self) -> str:
        sentences = (
            " ".join(self.draw(self.rng.randint(6, 22))).capitalize() + "."
            for _ in range(self.rng.randint(1, 7))
        )
        return " ".join(sentences)

    def document(self, sections: int) -> str:
        parts = [f"# {' '.join(self.draw(4)).title()}"]
        for _ in range(sections):
            parts.append(f"## {' '.join(self.draw(3)).title()}")
            parts += [self.paragraph() for _ in range(self.rng.randint(2, 8))]
        return "\n\n".join(parts)

    def question(self) -> str:
        return " ".join(self.draw(self.rng.randint(5, 15))).capitalize() + "?"


async def build(store: SQLiteStore, corpus: Corpus, agent_id: str, chunks: int) -> int:
    stored = 0
    number = 0
    while stored < chunks:
        number += 1
        source = prepare_source(f"document {number}.md", "markdown", corpus.document(sections=200))
        if stored + len(source.chunks) > chunks:  # the last document, cut short
            source = PreparedSource(
                source.name, source.format, source.bytes, source.chunks[: chunks - stored]
            )
        await store.add_source(agent_id, source)
        stored += len(source.chunks)
        print(f"\r  {stored:,} chunks", end="", flush=True)
    print()
    return number


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class Measured:
    documents: int
    build_s: float
    timings_ms: list[float]
    found: list[int]
    checks_ms: list[float]


async def measure(db: str, args: argparse.Namespace) -> Measured:
    corpus = Corpus(random.Random(args.seed))
    store = SQLiteStore(db, sync="normal")
    await store.open()
    try:
        agent = await store.create_agent(
            validate_agent_fields({"name": "reader"}, creating=True), new_token()[1]
        )
        empty = await store.create_agent(
            validate_agent_fields({"name": "no sources"}, creating=True), new_token()[1]
        )
        print(f"Building {args.chunks:,} chunks …")
        started = time.perf_counter()
        documents = await build(store, corpus, agent.id, args.chunks)
        build_s = time.perf_counter() - started

        questions = [corpus.question() for _ in range(args.queries)]
        await store.search_chunks(agent.id, search_terms(questions[0]), args.top_k)  # warm the cache
        timings_ms, found = [], []
        for question in questions:
            started = time.perf_counter()
            passages = await store.search_chunks(agent.id, search_terms(question), args.top_k)
            timings_ms.append((time.perf_counter() - started) * 1000)
            found.append(len(passages or []))
        checks_ms = []
        for question in questions:
            started = time.perf_counter()
            await store.search_chunks(empty.id, search_terms(question), args.top_k)
            checks_ms.append((time.perf_counter() - started) * 1000)
    finally:
        await store.close()
    return Measured(documents, build_s, timings_ms, found, checks_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--seed", type=int, default=20_261_127)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hookd-bench-knowledge-") as folder:
        m = asyncio.run(measure(os.path.join(folder, "knowledge.db"), args))
        size_mb = sum(f.stat().st_size for f in Path(folder).iterdir()) / 1e6

    median_ms = statistics.median(m.timings_ms)
    verdict = "PASS" if median_ms <= TARGET_MS else "FAIL  <-- MISSED"
    print(
        f"{m.documents} documents, {args.chunks:,} chunks, built in {m.build_s:.1f} s; database {size_mb:.0f} MB"
    )
    print(f"{'figure':52}  {'measured':>18}  {'target':>9}")
    figure = f"retrieval, top {args.top_k} of {args.chunks:,} chunks: median / p95"
    measured = f"{median_ms:.1f} / {percentile(m.timings_ms, 0.95):.1f} ms"
    print(f"{figure:52}  {measured:>18}  {'≤ 20 ms':>9}  {verdict}")
    print(f"{'  chunks found per question (mean)':52}  {statistics.mean(m.found):>18.1f}")
    check = f"{statistics.median(m.checks_ms):.2f} ms"
    print(f"{'an agent without sources: its check, median':52}  {check:>18}")


if __name__ == "__main__":
    main()
