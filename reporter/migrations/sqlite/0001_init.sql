-- Dialtone reporter schema 1 (SQLite). The PostgreSQL twin is migrations/postgres/0001_init.sql;
-- both keep the same tables, columns and indexes so that one set of queries serves both.
--
-- Instants are INTEGER nanoseconds since the Unix epoch (UTC): exact, comparable, and the same
-- type in both databases. Codes (direction, status, reasons, states) are the snake_case codes
-- the reports print.

-- Every event as received, by id: the source of truth. A CDR is re-assembled from all events of
-- its call, so the raw payload (the prost-encoded dialtone.v1.CallEvent) is kept whole.
CREATE TABLE events (
    event_id    TEXT    NOT NULL PRIMARY KEY,
    call_id     TEXT    NOT NULL,
    node_id     TEXT    NOT NULL,
    sequence    INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX events_call_id ON events (call_id);
CREATE INDEX events_at ON events (at);

-- One row per call whose CallStarted has arrived: the assembled Cdr as JSON, plus the columns
-- report windows and lookbacks select on. `client` is the client's number (inbound caller,
-- outbound number dialled): the lookbacks follow a client across calls.
CREATE TABLE cdrs (
    call_id       TEXT    NOT NULL PRIMARY KEY,
    started_at    INTEGER NOT NULL,
    ended_at      INTEGER,
    direction     TEXT    NOT NULL,
    caller        TEXT,
    number        TEXT    NOT NULL,
    number_name   TEXT,
    client        TEXT,
    agent         TEXT,
    status        TEXT    NOT NULL,
    missed_reason TEXT,
    answered_by   TEXT,
    complete      INTEGER NOT NULL,
    json          TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX cdrs_started_at ON cdrs (started_at);
CREATE INDEX cdrs_client ON cdrs (client, started_at);
CREATE INDEX cdrs_caller ON cdrs (caller, started_at);
CREATE INDEX cdrs_number ON cdrs (number, started_at);

-- The router's agent state changes (the heat map's agents on duty), by event id.
CREATE TABLE agent_states (
    event_id   TEXT    NOT NULL PRIMARY KEY,
    agent      TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    away_label TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    source     TEXT    NOT NULL,
    sequence   INTEGER NOT NULL,
    payload    BLOB    NOT NULL
);
CREATE INDEX agent_states_agent_at ON agent_states (agent, at);
CREATE INDEX agent_states_at ON agent_states (at);

-- Manual processing of unprocessed groups (dialtone handle): by client number, or by group id
-- for anonymous callers' groups.
CREATE TABLE handlings (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    client   TEXT,
    group_id TEXT,
    reason   TEXT    NOT NULL
        CHECK (reason IN ('spam', 'wrong_number', 'resolved_elsewhere', 'duplicate', 'other')),
    note     TEXT,
    by_user  TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    CHECK ((client IS NULL) <> (group_id IS NULL))
);
CREATE INDEX handlings_at ON handlings (at);
