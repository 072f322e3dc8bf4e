SELECT '{{ query_id }}' AS query_id, 'polygon-object' AS template, objectId, coord_ra, coord_dec, g_cModelFlux, r_cModelFlux, i_cModelFlux
FROM dp02_dc2_catalogs.Object
WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), POLYGON('ICRS', {{ polygon }})) = 1
