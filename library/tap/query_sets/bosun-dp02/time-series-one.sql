SELECT '{{ query_id }}' AS query_id, 'time-series-one' AS template, o.objectId, fs.band, fs.psfFlux, fs.psfFluxErr, fs.ccdVisitId
FROM dp02_dc2_catalogs.Object AS o
JOIN dp02_dc2_catalogs.ForcedSource AS fs ON o.objectId = fs.objectId
WHERE o.objectId = {{ object }}
