SELECT '{{ query_id }}' AS query_id, 'cone-source' AS template, sourceId, objectId, band, mjd, psfFlux
FROM sandbox.sources
WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {{ ra }}, {{ dec }}, {{ radius }})) = 1
