"""The PostgreSQL store's knowledge half: sources, their chunks, and full-text search over them.

Each chunk's words are a stored tsvector column (`words`, hookd_words: lower case, accents
folded, no stop words, no stemming, like SQLite's unicode61 tokenizer), indexed by GIN together
with its agent, so one agent's search reads only its own chunks' index entries. schema.sql
describes the tables.

How the ranking differs from SQLite's FTS5 BM25: ts_rank scores a chunk by how often it holds
the terms (with diminishing returns for repeats), divided by 1 + log of its length in words
(normalization 1). It has no inverse document frequency: a word found in most chunks weighs as
much as a rare one, where BM25 favours the chunk with the rare word. Both find the same chunks
for the same terms; their order can differ, and scores are on another scale (both: higher fits
better). The parsers differ too: PostgreSQL keeps a host name (example.com), an e-mail address or
a hyphenated word (and its parts) as tokens of their own, where unicode61 splits at every
character that is not a letter or digit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from agents.knowledge import Passage, PreparedSource, Source
from errors import NotFound
from tasks.ids import uuid7
from tasks.postgres.connection import PostgresBase
from tasks.rows import SOURCE_COLUMNS, source_from_row

# The agent's `limit` chunks holding any of the terms, best first. Each term is a phrase
# (phraseto_tsquery reads no operators: &, |, !, <->, : and * are just text); the terms' queries
# are OR-ed (hookd_any_words). A term with no word in it (only punctuation) matches nothing.
SEARCH_SQL = """
SELECT c.source_id, s.name, c.nth, c.body, ts_rank(c.words, m.query, 1)::float8 AS score
FROM (
    SELECT hookd_any_words(phraseto_tsquery('hookd_words', term)) AS query FROM unnest($2::text[]) AS term
) AS m, chunks AS c JOIN sources AS s ON s.id = c.source_id
WHERE c.agent_id = $1 AND c.words @@ m.query
ORDER BY score DESC, c.id
LIMIT $3
"""


class PostgresKnowledge(PostgresBase):
    """Knowledge operations of the PostgreSQL store (see tasks/store.py for their contracts)."""

    async def add_source(self, agent_id: str, source: PreparedSource) -> Source:
        source_id = uuid7()
        async with self._transaction() as conn:
            created = await conn.fetchrow(
                "INSERT INTO sources (id, agent_id, name, format, chunks, bytes, created_at)"
                f" SELECT $1, id, $2, $3, $4, $5, $6 FROM agents WHERE id = $7 RETURNING {SOURCE_COLUMNS}",
                source_id,
                source.name,
                source.format,
                len(source.chunks),
                source.bytes,
                time.time(),
                agent_id,
            )
            if created is None:
                raise NotFound(f"No agent has id '{agent_id}'.")
            # All chunks in one statement; each row's `words` is computed as it is inserted.
            await conn.execute(
                "INSERT INTO chunks (source_id, agent_id, nth, body)"
                " SELECT $1, $2, (u.nth - 1)::integer, u.body FROM unnest($3::text[]) WITH ORDINALITY AS u (body, nth)",
                source_id,
                agent_id,
                source.chunks,
            )
        return source_from_row(created)

    async def list_sources(self, agent_id: str) -> list[Source]:
        rows = await self._fetch(
            f"SELECT {SOURCE_COLUMNS} FROM sources WHERE agent_id = $1 ORDER BY id", agent_id
        )
        return [source_from_row(r) for r in rows]

    async def delete_source(self, agent_id: str, source_id: str) -> None:
        # Cascades to the chunks, and with them their index entries.
        if (
            await self._execute("DELETE FROM sources WHERE id = $1 AND agent_id = $2", source_id, agent_id)
            == 0
        ):
            raise NotFound(f"The agent has no source with id '{source_id}'.")

    async def search_chunks(self, agent_id: str, terms: Sequence[str], limit: int) -> list[Passage] | None:
        has_sources = await self._fetchrow(
            "SELECT EXISTS (SELECT 1 FROM sources WHERE agent_id = $1)", agent_id
        )
        if not has_sources[0]:
            return None
        if not terms or limit < 1:
            return []
        rows = await self._fetch(SEARCH_SQL, agent_id, list(terms), limit)
        return [Passage(source_id=r[0], source_name=r[1], chunk=r[2], text=r[3], score=r[4]) for r in rows]
