SELECT '{{ query_id }}' AS query_id, 'cone-source' AS template, forcedSourceId, objectId, band, psfFlux
FROM dp02_dc2_catalogs.ForcedSource
WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), CIRCLE('ICRS', {{ ra }}, {{ dec }}, {{ radius }})) = 1
