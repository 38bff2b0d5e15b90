{# The models' schema is carbon_analytics itself, not dbt's default <target>_carbon_analytics. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name or target.schema }}
{%- endmacro %}
