-- 002: one row per region and half-hour, the values as the API sent them (from silver).
--
-- Same rules as 001: applied once inside a transaction by the migration runner, idempotent on
-- its own, nothing dropped or rewritten.

CREATE TABLE IF NOT EXISTS carbon_data.carbon_intensity_halfhourly (
    regionid           INTEGER NOT NULL REFERENCES carbon_data.dim_region (regionid),
    period_start       TIMESTAMPTZ NOT NULL,
    date_recorded      DATE NOT NULL,
    intensity_forecast INTEGER
        CONSTRAINT carbon_intensity_halfhourly_intensity_forecast_check
        CHECK (intensity_forecast >= 0),
    intensity_index    TEXT,
    fuel_biomass       NUMERIC,
    fuel_coal          NUMERIC,
    fuel_imports       NUMERIC,
    fuel_gas           NUMERIC,
    fuel_nuclear       NUMERIC,
    fuel_other         NUMERIC,
    fuel_hydro         NUMERIC,
    fuel_solar         NUMERIC,
    fuel_wind          NUMERIC,
    loaded_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT carbon_intensity_halfhourly_pkey PRIMARY KEY (regionid, period_start),
    CONSTRAINT carbon_intensity_halfhourly_period_in_day_check
        CHECK (date_recorded = (period_start AT TIME ZONE 'UTC')::date)
);

-- Loads replace whole days and most queries filter on a date range.
CREATE INDEX IF NOT EXISTS carbon_intensity_halfhourly_date_recorded_idx
    ON carbon_data.carbon_intensity_halfhourly (date_recorded);

COMMENT ON TABLE carbon_data.carbon_intensity_halfhourly IS
    'Carbon intensity and generation mix per region and half-hour (UTC), as the API published them.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.regionid IS 'Region id, see carbon_data.dim_region.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.period_start IS 'UTC start of the half-hour period (the API''s "from").';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.date_recorded IS 'UTC day the half-hour starts on.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.intensity_forecast IS 'Forecast carbon intensity of the half-hour, gCO2/kWh, as the API sent it.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.intensity_index IS 'Intensity index label as the API sent it: very low, low, moderate, high or very high.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_biomass IS 'Share of biomass in the generation mix, percent, as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_coal IS 'Share of coal in the generation mix, percent, as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_imports IS 'Share of imports in the generation mix, percent, as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_gas IS 'Share of gas in the generation mix, percent, as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_nuclear IS 'Share of nuclear in the generation mix, percent, as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_other IS 'Share of other sources in the generation mix, percent, as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_hydro IS 'Share of hydro in the generation mix, percent, as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_solar IS 'Share of solar in the generation mix, percent, as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_wind IS 'Share of wind in the generation mix, percent, as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.loaded_at IS 'When the row was first inserted.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.updated_at IS 'When the row''s values last changed (equal to loaded_at if they never did).';

-- 001 described two columns of the daily table wrongly; comments are metadata, so they are
-- corrected here rather than by editing an applied file.
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.intensity_avg IS 'Mean forecast carbon intensity over the day, gCO2/kWh, rounded half away from zero to 0.01.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.index_mode IS 'Most frequent intensity index label of the day (ties go to the higher-carbon label); NULL if none.';
