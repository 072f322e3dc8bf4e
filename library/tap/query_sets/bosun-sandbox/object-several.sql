SELECT '{{ query_id }}' AS query_id, 'object-several' AS template, o.*
FROM sandbox.objects AS o
WHERE o.objectId IN ({{ objects }})
