select
    date_trunc('month', date_recorded)::date as month,
    count(*)::integer as half_hours,
    count(intensity_actual)::integer as actual_half_hours,
    round(avg(abs(forecast_error)), 2) as mean_absolute_error,
    round(avg(forecast_error), 2) as bias
from {{ source('carbon_data', 'carbon_intensity_national_halfhourly') }}
group by 1
