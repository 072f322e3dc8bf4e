SELECT '{{ query_id }}' AS query_id, schema_name, table_name, description
FROM TAP_SCHEMA.tables
