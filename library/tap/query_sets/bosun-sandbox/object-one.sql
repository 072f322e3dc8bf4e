SELECT '{{ query_id }}' AS query_id, 'object-one' AS template, o.*
FROM sandbox.objects AS o
WHERE o.objectId = {{ object }}
