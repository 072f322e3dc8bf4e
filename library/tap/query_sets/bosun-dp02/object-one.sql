SELECT '{{ query_id }}' AS query_id, 'object-one' AS template, o.*
FROM dp02_dc2_catalogs.Object AS o
WHERE o.objectId = {{ object }}
