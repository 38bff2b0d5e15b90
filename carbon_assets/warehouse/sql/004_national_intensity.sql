-- 004: national carbon intensity, forecast and actual, per half-hour and per UTC day.
--
-- Same rules as 001: applied once inside a transaction by the migration runner, idempotent on
-- its own, nothing dropped or rewritten.

-- One row per half-hour of the national endpoint (/intensity/{from}/{to}), from silver.
CREATE TABLE IF NOT EXISTS carbon_data.carbon_intensity_national_halfhourly (
    period_start       TIMESTAMPTZ NOT NULL,
    date_recorded      DATE NOT NULL,
    intensity_forecast INTEGER
        CONSTRAINT carbon_intensity_national_halfhourly_forecast_check
        CHECK (intensity_forecast BETWEEN 0 AND 2000),
    intensity_actual   INTEGER
        CONSTRAINT carbon_intensity_national_halfhourly_actual_check
        CHECK (intensity_actual BETWEEN 0 AND 2000),
    intensity_index    TEXT
        CONSTRAINT carbon_intensity_national_halfhourly_index_check
        CHECK (intensity_index IN ('very low', 'low', 'moderate', 'high', 'very high')),
    forecast_error     INTEGER GENERATED ALWAYS AS (intensity_forecast - intensity_actual) STORED,
    fetched_at         TIMESTAMPTZ,
    source_id          INTEGER,
    loaded_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT carbon_intensity_national_halfhourly_pkey PRIMARY KEY (period_start),
    CONSTRAINT carbon_intensity_national_halfhourly_period_in_day_check
        CHECK (date_recorded = (period_start AT TIME ZONE 'UTC')::date)
);

CREATE INDEX IF NOT EXISTS carbon_intensity_national_halfhourly_date_recorded_idx
    ON carbon_data.carbon_intensity_national_halfhourly (date_recorded);

COMMENT ON TABLE carbon_data.carbon_intensity_national_halfhourly IS
    'National (GB) carbon intensity per half-hour (UTC): the forecast and, once published, the actual value, as the API''s national endpoint sent them. Actuals arrive hours after the half-hour and are revised for a day or more; a day is final once every actual is in.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.period_start IS 'UTC start of the half-hour period (the API''s "from").';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.date_recorded IS 'UTC day (00:00 to 24:00 UTC, not UK local time) the half-hour starts on.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.intensity_forecast IS 'Forecast national carbon intensity of the half-hour, gCO2/kWh (0-2000), as the API sent it.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.intensity_actual IS 'Actual (estimated from metered generation) national carbon intensity of the half-hour, gCO2/kWh (0-2000); NULL while the API has not published it.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.intensity_index IS 'Intensity index label as the API sent it (from the actual when published, else the forecast): very low, low, moderate, high or very high.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.forecast_error IS 'intensity_forecast - intensity_actual, gCO2/kWh: positive when the forecast was too high; NULL while the actual is pending.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.fetched_at IS 'When the API answer the half-hour''s values come from was fetched (UTC; the latest fetch wins).';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.source_id IS 'The API the half-hour was fetched from, see carbon_data.fetch_source.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.loaded_at IS 'When the row was first inserted.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_halfhourly.updated_at IS 'When the row''s values last changed (equal to loaded_at if they never did).';

-- One row per UTC day: the national half-hours averaged, and how good the day's forecasts were.
CREATE TABLE IF NOT EXISTS carbon_data.carbon_intensity_national_daily (
    date_recorded       DATE NOT NULL,
    forecast_avg        DECIMAL(10, 2)
        CONSTRAINT carbon_intensity_national_daily_forecast_avg_check
        CHECK (forecast_avg BETWEEN 0 AND 2000),
    actual_avg          DECIMAL(10, 2)
        CONSTRAINT carbon_intensity_national_daily_actual_avg_check
        CHECK (actual_avg BETWEEN 0 AND 2000),
    mean_absolute_error DECIMAL(10, 2)
        CONSTRAINT carbon_intensity_national_daily_mae_check
        CHECK (mean_absolute_error BETWEEN 0 AND 2000),
    bias                DECIMAL(10, 2)
        CONSTRAINT carbon_intensity_national_daily_bias_check
        CHECK (bias BETWEEN -2000 AND 2000),
    index_mode          TEXT
        CONSTRAINT carbon_intensity_national_daily_index_mode_check
        CHECK (index_mode IN ('very low', 'low', 'moderate', 'high', 'very high')),
    half_hours          SMALLINT NOT NULL
        CONSTRAINT carbon_intensity_national_daily_half_hours_check
        CHECK (half_hours BETWEEN 0 AND 48),
    actual_half_hours   SMALLINT NOT NULL
        CONSTRAINT carbon_intensity_national_daily_actual_half_hours_check
        CHECK (actual_half_hours BETWEEN 0 AND half_hours),
    fetched_at          TIMESTAMPTZ,
    source_id           INTEGER,
    loaded_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT carbon_intensity_national_daily_pkey PRIMARY KEY (date_recorded)
);

COMMENT ON TABLE carbon_data.carbon_intensity_national_daily IS
    'National (GB) carbon intensity per UTC day: time averages of the half-hourly forecast and actual, and the day''s forecast error (MAE, bias) over the half-hours whose actual is published.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.date_recorded IS 'UTC day (00:00 to 24:00 UTC, not UK local time) the half-hour periods start on.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.forecast_avg IS 'Time average of the day''s half-hourly national forecast, gCO2/kWh, rounded half away from zero to 0.01.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.actual_avg IS 'Time average of the day''s published half-hourly actuals, gCO2/kWh, rounded to 0.01; NULL when none is published yet.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.mean_absolute_error IS 'Mean of |forecast - actual| over the half-hours with an actual, gCO2/kWh, rounded to 0.01; NULL when none has one.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.bias IS 'Mean of (forecast - actual) over the half-hours with an actual, gCO2/kWh: positive when the forecasts were too high; NULL when none has one.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.index_mode IS 'Most frequent intensity index label of the day (ties go to the higher-carbon label); NULL if none.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.half_hours IS 'Number of half-hours the forecast average is based on (48 for a complete day).';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.actual_half_hours IS 'Number of half-hours with a published actual (equal to half_hours once the day has settled).';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.fetched_at IS 'When the latest API answer behind the day''s half-hours was fetched (UTC).';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.source_id IS 'The API the day was fetched from, see carbon_data.fetch_source.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.loaded_at IS 'When the row was first inserted.';
COMMENT ON COLUMN carbon_data.carbon_intensity_national_daily.updated_at IS 'When the row''s values last changed (equal to loaded_at if they never did).';
