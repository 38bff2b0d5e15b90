-- DNO regions only; months are UK local months, like the local days.
select
    h.regionid,
    r.shortname,
    date_trunc('month', h.period_start at time zone 'Europe/London')::date as local_month,
    count(*)::integer as half_hours,
    round(avg(h.intensity_forecast), 2) as intensity_mean,
    min(h.intensity_forecast) as intensity_min,
    max(h.intensity_forecast) as intensity_max
from {{ source('carbon_data', 'carbon_intensity_halfhourly') }} as h
join {{ source('carbon_data', 'dim_region') }} as r using (regionid)
where r.region_kind = 'dno'
group by 1, 2, 3
