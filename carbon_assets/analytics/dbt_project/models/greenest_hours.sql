-- Hours of the UK local day, so "the greenest hour" is one a person in the region would act on.
with hours as (
    select
        h.regionid,
        date_trunc('month', h.period_start at time zone 'Europe/London')::date as local_month,
        extract(hour from h.period_start at time zone 'Europe/London')::integer as local_hour,
        count(*)::integer as half_hours,
        round(avg(h.intensity_forecast), 2) as intensity_mean
    from {{ source('carbon_data', 'carbon_intensity_halfhourly') }} as h
    join {{ source('carbon_data', 'dim_region') }} as r using (regionid)
    where r.region_kind = 'dno' and h.intensity_forecast is not null
    group by 1, 2, 3
)
select
    *,
    -- Ties go to the earlier hour, so rank 1 is a single hour.
    row_number() over (
        partition by regionid, local_month order by intensity_mean, local_hour
    )::integer as greenness_rank
from hours
