-- A UK local day (Europe/London) has 46, 48 or 50 half-hours: counted, not assumed.
select
    h.regionid,
    r.shortname,
    r.region_kind,
    (h.period_start at time zone 'Europe/London')::date as local_date,
    count(*)::integer as half_hours,
    round(avg(h.intensity_forecast), 2) as intensity_mean,
    min(h.intensity_forecast) as intensity_min,
    max(h.intensity_forecast) as intensity_max
from {{ source('carbon_data', 'carbon_intensity_halfhourly') }} as h
join {{ source('carbon_data', 'dim_region') }} as r using (regionid)
group by 1, 2, 3, 4
