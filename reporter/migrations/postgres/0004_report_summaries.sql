-- Dialtone reporter schema 4 (PostgreSQL): report summaries, maintained by ingestion in the same
-- transaction as the CDR they come from. The SQLite twin is
-- migrations/sqlite/0004_report_summaries.sql; both keep the same tables and indexes.
--
-- A report over a year of calls cannot read every CDR (millions of JSON documents) and stay
-- under a second, so what the agents table and the heat map add up is kept per UTC hour and
-- per UTC day; a report sums whole days, then whole hours, then reads the CDRs of the partial
-- hours at its edges. When a CDR is rebuilt its old contribution is subtracted and the new one
-- added, so events twice or out of order give the same sums. What depends on *other* calls
-- (was a missed client called back later?) is kept per missed offer / per dial, so the reports
-- can answer it with an index instead of re-reading every call.

-- Per-agent offer figures (PRODUCT.md's offered, answered, missed, declined, time to answer,
-- short calls) by bucket start (ns), our number and agent. `number_name` is '' when unknown.
CREATE TABLE agent_hours (
    bucket       BIGINT  NOT NULL,
    number       TEXT    NOT NULL,
    number_name  TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    offered      BIGINT  NOT NULL,
    answered     BIGINT  NOT NULL,
    missed       BIGINT  NOT NULL,
    declined     BIGINT  NOT NULL,
    answer_ns    BIGINT  NOT NULL,
    short_calls  BIGINT  NOT NULL,
    short_agent  BIGINT  NOT NULL,
    short_client BIGINT  NOT NULL,
    PRIMARY KEY (bucket, number, number_name, agent)
);
CREATE TABLE agent_days (
    bucket       BIGINT  NOT NULL,
    number       TEXT    NOT NULL,
    number_name  TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    offered      BIGINT  NOT NULL,
    answered     BIGINT  NOT NULL,
    missed       BIGINT  NOT NULL,
    declined     BIGINT  NOT NULL,
    answer_ns    BIGINT  NOT NULL,
    short_calls  BIGINT  NOT NULL,
    short_agent  BIGINT  NOT NULL,
    short_client BIGINT  NOT NULL,
    PRIMARY KEY (bucket, number, number_name, agent)
);

-- Inbound calls (not blocked, not to unknown numbers) and those missed by their own events, per
-- UTC hour and number: the heat map's counts.
CREATE TABLE call_hours (
    bucket      BIGINT  NOT NULL,
    number      TEXT    NOT NULL,
    number_name TEXT    NOT NULL,
    inbound     BIGINT  NOT NULL,
    missed      BIGINT  NOT NULL,
    PRIMARY KEY (bucket, number, number_name)
);

-- Each agent's missed offers of missed inbound calls from known clients; `called` is 1 once an
-- outbound call dialled the client after the miss (missedWithoutCallback counts the others).
CREATE TABLE miss_offers (
    call_id     TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    started_at  BIGINT  NOT NULL,
    client      TEXT    NOT NULL,
    number      TEXT    NOT NULL,
    number_name TEXT    NOT NULL,
    misses      BIGINT  NOT NULL,
    called      BIGINT  NOT NULL,
    PRIMARY KEY (call_id, agent)
);
CREATE INDEX miss_offers_client ON miss_offers (client, started_at);
CREATE INDEX miss_offers_uncalled ON miss_offers (started_at) WHERE called = 0;

-- Outbound calls that dialled a client (callback attempts when they follow a miss).
CREATE TABLE dials (
    call_id    TEXT    NOT NULL PRIMARY KEY,
    client     TEXT    NOT NULL,
    started_at BIGINT  NOT NULL
);
CREATE INDEX dials_client ON dials (client, started_at);
CREATE INDEX dials_started_at ON dials (started_at);

-- Missed inbound calls whose caller chose a queue callback: whether they stay missed depends on
-- that callback, so reports judge these few calls one by one.
CREATE TABLE callback_choices (
    call_id    TEXT    NOT NULL PRIMARY KEY,
    started_at BIGINT  NOT NULL
);
CREATE INDEX callback_choices_started_at ON callback_choices (started_at);

-- How the summaries were built: `short_call_seconds` (the policy the short calls were counted
-- with; -1 while they need a rebuild).
CREATE TABLE summary_state (
    name  TEXT    NOT NULL PRIMARY KEY,
    value BIGINT  NOT NULL
);

-- The missed-calls report and the call log read their newest rows first.
CREATE INDEX cdrs_missed ON cdrs (started_at) WHERE missed_reason IS NOT NULL;
