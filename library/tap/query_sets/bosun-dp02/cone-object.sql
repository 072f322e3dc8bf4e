SELECT '{{ query_id }}' AS query_id, 'cone-object' AS template, objectId, coord_ra, coord_dec, r_cModelFlux, refExtendedness
FROM dp02_dc2_catalogs.Object
WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), CIRCLE('ICRS', {{ ra }}, {{ dec }}, {{ radius }})) = 1
