SELECT '{{ query_id }}' AS query_id, 'time-series-one' AS template, o.objectId, s.band, s.mjd, s.psfFlux, s.psfFluxErr
FROM sandbox.objects AS o
JOIN sandbox.sources AS s ON o.objectId = s.objectId
WHERE o.objectId = {{ object }}
ORDER BY s.mjd
