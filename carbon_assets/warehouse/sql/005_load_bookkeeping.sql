-- 005: what each day of each fact table was last loaded from, so a load whose every day is
-- the same as last time leaves the table alone; and when the dbt models were last built
-- whole and from which models, so a backfill that changed no table and no model does not
-- build them again.
--
-- Same rules as 001: applied once inside a transaction by the migration runner, idempotent on
-- its own, nothing dropped or rewritten. Written by the load in the transaction that writes
-- the rows, so a record never claims a load that was rolled back.

CREATE TABLE IF NOT EXISTS carbon_data.loaded_days (
    table_name    TEXT NOT NULL,
    date_recorded DATE NOT NULL,
    input_sha256  TEXT NOT NULL,
    row_count     INTEGER NOT NULL CHECK (row_count >= 0),
    loaded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, date_recorded)
);

COMMENT ON TABLE carbon_data.loaded_days IS
    'Bookkeeping of the loads: per fact table and day, what the day''s rows were loaded from. A load whose days all match (same input, same row count in the table) changes nothing.';
COMMENT ON COLUMN carbon_data.loaded_days.table_name IS 'The fact table, e.g. carbon_intensity_daily.';
COMMENT ON COLUMN carbon_data.loaded_days.date_recorded IS 'The UTC day.';
COMMENT ON COLUMN carbon_data.loaded_days.input_sha256 IS 'SHA-256 of what the day was loaded from (its lake rows) and of the API they were fetched from; "no rows" for a day the load found empty.';
COMMENT ON COLUMN carbon_data.loaded_days.row_count IS 'Rows of the day in the table right after that load.';
COMMENT ON COLUMN carbon_data.loaded_days.loaded_at IS 'When the day was last loaded.';

CREATE TABLE IF NOT EXISTS carbon_data.analytics_builds (
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    models_version TEXT NOT NULL
);

COMMENT ON TABLE carbon_data.analytics_builds IS
    'Bookkeeping of the analyst layer: each `dbt build` of every model that succeeded.';
COMMENT ON COLUMN carbon_data.analytics_builds.started_at IS 'When the build started: it read the tables as loaded by then.';
COMMENT ON COLUMN carbon_data.analytics_builds.finished_at IS 'When the build ended.';
COMMENT ON COLUMN carbon_data.analytics_builds.models_version IS 'A hash of the dbt project''s files and of the dbt versions that built it: a changed model is built again.';
