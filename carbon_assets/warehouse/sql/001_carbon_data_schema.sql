-- 001: the carbon_data schema: regions and one row of daily averages per region and day.
--
-- Applied by `carbon-assets db-init` (carbon_assets.database.apply_schema), inside one
-- transaction and recorded in carbon_data.schema_migrations. Every statement is also
-- idempotent on its own (IF NOT EXISTS, COMMENT ON), so running this file twice by hand with
-- psql is harmless too. Nothing here drops or rewrites data.

CREATE SCHEMA IF NOT EXISTS carbon_data;

COMMENT ON SCHEMA carbon_data IS
    'UK Carbon Intensity API data (api.carbonintensity.org.uk), loaded by the carbon-assets Dagster pipeline.';

-- Regions of the all-region endpoints. Names follow the most recent day loaded for the region
-- (region 6 was renamed between 2019 and 2024).
CREATE TABLE IF NOT EXISTS carbon_data.dim_region (
    regionid   INTEGER PRIMARY KEY,
    shortname  TEXT NOT NULL,
    dno        TEXT NOT NULL,
    updated_at TIMESTAMPTZ
);

COMMENT ON TABLE carbon_data.dim_region IS
    'The 18 regions of the Carbon Intensity API; names as of the latest day loaded for each region.';
COMMENT ON COLUMN carbon_data.dim_region.regionid IS 'Region id used by the API (1-18; 15-18 are England, Scotland, Wales, GB).';
COMMENT ON COLUMN carbon_data.dim_region.shortname IS 'Region name, e.g. "North Scotland".';
COMMENT ON COLUMN carbon_data.dim_region.dno IS 'Distribution network operator, e.g. "Scottish Hydro Electric Power Distribution".';
COMMENT ON COLUMN carbon_data.dim_region.updated_at IS 'When the names were last written.';

-- The gold table: one row per region and UTC day, averaged over the day's half-hour periods.
CREATE TABLE IF NOT EXISTS carbon_data.carbon_intensity_daily (
    regionid       INTEGER NOT NULL REFERENCES carbon_data.dim_region (regionid),
    date_recorded  DATE NOT NULL,
    shortname      TEXT NOT NULL,
    dno            TEXT NOT NULL,
    intensity_avg  DECIMAL(10, 2) NOT NULL
        CONSTRAINT carbon_intensity_daily_intensity_avg_check CHECK (intensity_avg >= 0),
    index_mode     TEXT
        CONSTRAINT carbon_intensity_daily_index_mode_check
        CHECK (index_mode IN ('very low', 'low', 'moderate', 'high', 'very high')),
    fuel_biomass   DECIMAL(10, 2) CONSTRAINT carbon_intensity_daily_fuel_biomass_check CHECK (fuel_biomass BETWEEN 0 AND 100),
    fuel_coal      DECIMAL(10, 2) CONSTRAINT carbon_intensity_daily_fuel_coal_check    CHECK (fuel_coal    BETWEEN 0 AND 100),
    fuel_imports   DECIMAL(10, 2) CONSTRAINT carbon_intensity_daily_fuel_imports_check CHECK (fuel_imports BETWEEN 0 AND 100),
    fuel_gas       DECIMAL(10, 2) CONSTRAINT carbon_intensity_daily_fuel_gas_check     CHECK (fuel_gas     BETWEEN 0 AND 100),
    fuel_nuclear   DECIMAL(10, 2) CONSTRAINT carbon_intensity_daily_fuel_nuclear_check CHECK (fuel_nuclear BETWEEN 0 AND 100),
    fuel_other     DECIMAL(10, 2) CONSTRAINT carbon_intensity_daily_fuel_other_check   CHECK (fuel_other   BETWEEN 0 AND 100),
    fuel_hydro     DECIMAL(10, 2) CONSTRAINT carbon_intensity_daily_fuel_hydro_check   CHECK (fuel_hydro   BETWEEN 0 AND 100),
    fuel_solar     DECIMAL(10, 2) CONSTRAINT carbon_intensity_daily_fuel_solar_check   CHECK (fuel_solar   BETWEEN 0 AND 100),
    fuel_wind      DECIMAL(10, 2) CONSTRAINT carbon_intensity_daily_fuel_wind_check    CHECK (fuel_wind    BETWEEN 0 AND 100),
    half_hours     SMALLINT NOT NULL
        CONSTRAINT carbon_intensity_daily_half_hours_check CHECK (half_hours BETWEEN 0 AND 48),
    loaded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT carbon_intensity_daily_pkey PRIMARY KEY (regionid, date_recorded)
);

-- The primary key already serves lookups by region; most queries filter on a date range.
CREATE INDEX IF NOT EXISTS carbon_intensity_daily_date_recorded_idx
    ON carbon_data.carbon_intensity_daily (date_recorded);

COMMENT ON TABLE carbon_data.carbon_intensity_daily IS
    'Daily carbon intensity and generation mix per region (UTC days), averaged over the day''s half-hour periods.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.regionid IS 'Region id, see carbon_data.dim_region.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.date_recorded IS 'UTC day the half-hour periods belong to.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.shortname IS 'Region name as published for this day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.dno IS 'Distribution network operator as published for this day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.intensity_avg IS 'Mean forecast carbon intensity over the day, gCO2/kWh, rounded half up to 0.01.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.index_mode IS 'Most frequent intensity index label of the day (ties go to the cleaner label); NULL if none.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_biomass IS 'Mean share of biomass in the generation mix, percent; NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_coal IS 'Mean share of coal in the generation mix, percent; NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_imports IS 'Mean share of imports in the generation mix, percent; NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_gas IS 'Mean share of gas in the generation mix, percent; NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_nuclear IS 'Mean share of nuclear in the generation mix, percent; NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_other IS 'Mean share of other sources in the generation mix, percent; NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_hydro IS 'Mean share of hydro in the generation mix, percent; NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_solar IS 'Mean share of solar in the generation mix, percent; NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_wind IS 'Mean share of wind in the generation mix, percent; NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.half_hours IS 'Number of half-hour periods the averages are based on (48 for a complete day).';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.loaded_at IS 'When the row was first inserted.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.updated_at IS 'When the row''s values last changed (equal to loaded_at if they never did).';
