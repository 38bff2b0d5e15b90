-- 003: where every row came from, the physical bounds on the half-hourly table as on the daily
-- one, the kind of each region, and what the numbers are.
--
-- Same rules as 001: applied once inside a transaction by the migration runner, idempotent on
-- its own, nothing dropped or rewritten. The new CHECKs are added NOT VALID (enforced on every
-- row written from now on) and then validated where the rows already stored allow it: a
-- table holding an impossible value loaded before this file keeps its constraint NOT VALID
-- (a WARNING names it) rather than fail the migration, until that day is loaded again.

-- The APIs the lake's rows were fetched from (the lake records its source: source.json).
CREATE TABLE IF NOT EXISTS carbon_data.fetch_source (
    source_id     INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    api_base_url  TEXT NOT NULL,
    emulator      BOOLEAN,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT fetch_source_api_base_url_emulator_key
        UNIQUE NULLS NOT DISTINCT (api_base_url, emulator)
);

COMMENT ON TABLE carbon_data.fetch_source IS
    'The APIs the rows were fetched from: the real Carbon Intensity API or the offline emulator.';
COMMENT ON COLUMN carbon_data.fetch_source.source_id IS 'Source id, referenced by the fact tables'' source_id.';
COMMENT ON COLUMN carbon_data.fetch_source.api_base_url IS 'Base URL of the API the lake was filled from, e.g. https://api.carbonintensity.org.uk; "unknown" for a lake that did not record its source.';
COMMENT ON COLUMN carbon_data.fetch_source.emulator IS 'True when the API was the offline emulator (synthetic data, not the real API''s values); NULL when unknown.';
COMMENT ON COLUMN carbon_data.fetch_source.first_seen_at IS 'When the warehouse first loaded rows from this source.';

ALTER TABLE carbon_data.carbon_intensity_daily
    ADD COLUMN IF NOT EXISTS source_id INTEGER REFERENCES carbon_data.fetch_source (source_id),
    ADD COLUMN IF NOT EXISTS fetched_at TIMESTAMPTZ;
-- No foreign key on the half-hourly table's source_id: each load stamps the one source_id it
-- got from fetch_source on every row, and a foreign key would check it again row by row, as
-- the regionid key does, on millions of rows (the first load's largest cost after the rows
-- themselves). halfhourly_rows_from_one_source names any source_id fetch_source lacks.
ALTER TABLE carbon_data.carbon_intensity_halfhourly
    ADD COLUMN IF NOT EXISTS source_id INTEGER,
    ADD COLUMN IF NOT EXISTS fetched_at TIMESTAMPTZ;

COMMENT ON COLUMN carbon_data.carbon_intensity_daily.source_id IS 'The API the day was fetched from, see carbon_data.fetch_source; NULL for rows loaded before sources were recorded.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fetched_at IS 'When the latest API answer behind the row''s half-hours was fetched (UTC); NULL for rows loaded before it was recorded.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.source_id IS 'The API the half-hour was fetched from, see carbon_data.fetch_source; NULL for rows loaded before sources were recorded.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fetched_at IS 'When the API answer the half-hour''s values come from was fetched (UTC; the latest fetch wins); NULL for rows loaded before it was recorded.';

-- Regions 1-14 are the distribution network operators' regions; 15-17 are England, Scotland
-- and Wales and 18 is GB, aggregates of them. An average over all 18 counts GB's area three
-- times, so queries over regions filter region_kind = 'dno'.
ALTER TABLE carbon_data.dim_region
    ADD COLUMN IF NOT EXISTS region_kind TEXT GENERATED ALWAYS AS (
        CASE
            WHEN regionid BETWEEN 1 AND 14 THEN 'dno'
            WHEN regionid BETWEEN 15 AND 17 THEN 'nation'
            WHEN regionid = 18 THEN 'gb'
        END
    ) STORED;
COMMENT ON COLUMN carbon_data.dim_region.regionid IS 'Region id used by the API: 1-14 the DNO regions, 15-17 England, Scotland and Wales, 18 GB (see region_kind).';
COMMENT ON COLUMN carbon_data.dim_region.region_kind IS 'dno for the 14 distribution network operator regions (1-14), which together cover GB once; nation for England, Scotland and Wales (15-17) and gb for GB (18), aggregates of them. Average or sum over regions with region_kind = ''dno''.';

-- The half-hourly table gets the daily one's bounds (those of silver's blocking checks), the
-- daily average intensity its upper bound, and dim_region a CHECK on region_kind (a region
-- beyond the API's 18 has no kind). Each is added NOT VALID if it is not there yet, then
-- validated.
DO $$
DECLARE
    bound RECORD;
BEGIN
    FOR bound IN
        SELECT * FROM (VALUES
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_intensity_forecast_range_check', 'intensity_forecast BETWEEN 0 AND 2000'),
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_fuel_biomass_check', 'fuel_biomass BETWEEN 0 AND 100'),
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_fuel_coal_check', 'fuel_coal BETWEEN 0 AND 100'),
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_fuel_imports_check', 'fuel_imports BETWEEN 0 AND 100'),
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_fuel_gas_check', 'fuel_gas BETWEEN 0 AND 100'),
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_fuel_nuclear_check', 'fuel_nuclear BETWEEN 0 AND 100'),
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_fuel_other_check', 'fuel_other BETWEEN 0 AND 100'),
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_fuel_hydro_check', 'fuel_hydro BETWEEN 0 AND 100'),
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_fuel_solar_check', 'fuel_solar BETWEEN 0 AND 100'),
            ('carbon_intensity_halfhourly', 'carbon_intensity_halfhourly_fuel_wind_check', 'fuel_wind BETWEEN 0 AND 100'),
            ('carbon_intensity_daily', 'carbon_intensity_daily_intensity_avg_range_check', 'intensity_avg BETWEEN 0 AND 2000'),
            ('dim_region', 'dim_region_region_kind_check', 'region_kind IS NOT NULL AND region_kind IN (''dno'', ''nation'', ''gb'')')
        ) AS bounds (stored_in, name, rule)
    LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_constraint
            WHERE connamespace = 'carbon_data'::regnamespace AND conname = bound.name
        ) THEN
            EXECUTE format(
                'ALTER TABLE carbon_data.%I ADD CONSTRAINT %I CHECK (%s) NOT VALID',
                bound.stored_in, bound.name, bound.rule
            );
        END IF;
        BEGIN
            EXECUTE format(
                'ALTER TABLE carbon_data.%I VALIDATE CONSTRAINT %I', bound.stored_in, bound.name
            );
        EXCEPTION WHEN check_violation THEN
            RAISE WARNING 'carbon_data.% holds rows that break %: it holds for new rows only until those days are loaded again',
                bound.stored_in, bound.name;
        END;
    END LOOP;
END
$$;

-- What the numbers are, where a researcher reads.
COMMENT ON TABLE carbon_data.carbon_intensity_daily IS
    'Daily carbon intensity and generation mix per region and UTC day: time averages of the half-hourly values (every half-hour weighs the same; not weighted by energy). Intensity is the API''s forecast: the regional API publishes no actuals.';
COMMENT ON TABLE carbon_data.carbon_intensity_halfhourly IS
    'Carbon intensity forecast and generation mix per region and half-hour (UTC), as the API published them. The regional API publishes forecasts only, no actual intensity.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.date_recorded IS 'UTC day (00:00 to 24:00 UTC, not UK local time) the half-hour periods start on.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.intensity_avg IS 'Time average of the day''s half-hourly forecast carbon intensity, gCO2/kWh (0-2000), rounded half away from zero to 0.01. A forecast: the regional API publishes no actuals.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_biomass IS 'Time average over the day of the half-hourly share of biomass in the generation mix, percent (not energy-weighted); NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_coal IS 'Time average over the day of the half-hourly share of coal in the generation mix, percent (not energy-weighted); NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_imports IS 'Time average over the day of the half-hourly share of imports in the generation mix, percent (not energy-weighted); NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_gas IS 'Time average over the day of the half-hourly share of gas in the generation mix, percent (not energy-weighted); NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_nuclear IS 'Time average over the day of the half-hourly share of nuclear in the generation mix, percent (not energy-weighted); NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_other IS 'Time average over the day of the half-hourly share of other sources in the generation mix, percent (not energy-weighted); NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_hydro IS 'Time average over the day of the half-hourly share of hydro in the generation mix, percent (not energy-weighted); NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_solar IS 'Time average over the day of the half-hourly share of solar in the generation mix, percent (not energy-weighted); NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_daily.fuel_wind IS 'Time average over the day of the half-hourly share of wind in the generation mix, percent (not energy-weighted); NULL if the API never reported it that day.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.date_recorded IS 'UTC day (00:00 to 24:00 UTC, not UK local time) the half-hour starts on.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.intensity_forecast IS 'Forecast carbon intensity of the half-hour, gCO2/kWh (0-2000), as the API sent it. The regional API publishes no actuals.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_biomass IS 'Share of biomass in the region''s generation mix over the half-hour, percent (0-100), as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_coal IS 'Share of coal in the region''s generation mix over the half-hour, percent (0-100), as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_imports IS 'Share of imports in the region''s generation mix over the half-hour, percent (0-100), as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_gas IS 'Share of gas in the region''s generation mix over the half-hour, percent (0-100), as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_nuclear IS 'Share of nuclear in the region''s generation mix over the half-hour, percent (0-100), as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_other IS 'Share of other sources in the region''s generation mix over the half-hour, percent (0-100), as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_hydro IS 'Share of hydro in the region''s generation mix over the half-hour, percent (0-100), as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_solar IS 'Share of solar in the region''s generation mix over the half-hour, percent (0-100), as the API sent it; NULL if not reported.';
COMMENT ON COLUMN carbon_data.carbon_intensity_halfhourly.fuel_wind IS 'Share of wind in the region''s generation mix over the half-hour, percent (0-100), as the API sent it; NULL if not reported.';
