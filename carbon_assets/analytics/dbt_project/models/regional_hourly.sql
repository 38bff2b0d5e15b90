-- DNO regions only: the nation and GB regions are aggregates of them.
select
    h.regionid,
    r.shortname,
    date_trunc('hour', h.period_start) as hour_start,
    count(*)::integer as half_hours,
    round(avg(h.intensity_forecast), 2) as intensity_mean
from {{ source('carbon_data', 'carbon_intensity_halfhourly') }} as h
join {{ source('carbon_data', 'dim_region') }} as r using (regionid)
where r.region_kind = 'dno'
group by 1, 2, 3
