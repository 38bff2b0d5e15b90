-- Region 18 (GB) from the regional endpoint against the national endpoint, per UTC day.
with gb as (
    select period_start, date_recorded, intensity_forecast
    from {{ source('carbon_data', 'carbon_intensity_halfhourly') }}
    where regionid = 18
),
national as (
    select period_start, date_recorded, intensity_forecast
    from {{ source('carbon_data', 'carbon_intensity_national_halfhourly') }}
),
both_series as (
    select
        coalesce(gb.date_recorded, national.date_recorded) as date_recorded,
        gb.intensity_forecast as gb_forecast,
        national.intensity_forecast as national_forecast,
        gb.period_start is not null as in_regional,
        national.period_start is not null as in_national
    from gb full join national using (period_start)
)
select
    date_recorded,
    count(*) filter (where in_regional)::integer as regional_half_hours,
    count(*) filter (where in_national)::integer as national_half_hours,
    count(*) filter (where in_regional and in_national)::integer as common_half_hours,
    round(count(*) filter (where in_regional and in_national)::numeric / count(*), 4)
        as common_share,
    round(avg(gb_forecast - national_forecast), 2) as mean_difference,
    round(avg(abs(gb_forecast - national_forecast)), 2) as mean_absolute_difference
from both_series
group by 1
