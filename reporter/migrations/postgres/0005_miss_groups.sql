-- Dialtone reporter schema 5 (PostgreSQL): missed groups, kept by ingestion. The SQLite twin is
-- migrations/sqlite/0005_miss_groups.sql; both keep the same tables and indexes.
--
-- The unprocessed list and the callbacks report are made of groups (a client's misses until
-- the client is reached or the group is handled). Building them means reading every call of
-- every client with a miss in the window: seconds over millions of CDRs. So each client's
-- groups over their whole history are rebuilt, in the ingestion transaction, whenever one of
-- the client's calls or handlings changes, and the reports read the groups. `detail` is the
-- group as JSON (misses, attempts, processing); the columns are what the reports select and
-- sum on. Instants are BIGINT nanoseconds since the Unix epoch (UTC).
CREATE TABLE miss_groups (
    id               TEXT    NOT NULL PRIMARY KEY,
    client           TEXT,
    first_missed_at  BIGINT  NOT NULL,
    last_missed_at   BIGINT  NOT NULL,
    last_fact_at     BIGINT  NOT NULL,
    processed_at     BIGINT,
    first_attempt_at BIGINT,
    callback_agent   TEXT,
    detail           TEXT    NOT NULL
);
CREATE INDEX miss_groups_client ON miss_groups (client);
CREATE INDEX miss_groups_first ON miss_groups (first_missed_at, id);
CREATE INDEX miss_groups_fact ON miss_groups (last_fact_at);
-- Groups spanning a day or more: the only ones a report window's start can cut in two.
CREATE INDEX miss_groups_long ON miss_groups (last_missed_at)
    WHERE last_missed_at - first_missed_at >= 86400000000000;

-- The agents who missed each group's calls: the callbacks report's `never` per agent.
CREATE TABLE miss_group_agents (
    group_id TEXT NOT NULL,
    agent    TEXT NOT NULL,
    PRIMARY KEY (group_id, agent)
);

-- Groups are complete once `miss_groups` = 1 here: at once on an empty database, after the
-- first ingestion transaction rebuilds them on one from before schema 5.
INSERT INTO summary_state (name, value)
    SELECT 'miss_groups', 1 WHERE NOT EXISTS (SELECT 1 FROM cdrs);
