SELECT TOP 1000 '{{ query_id }}' AS query_id, 'flux-range' AS template, objectId, coord_ra, coord_dec, {{ band }}_cModelFlux
FROM dp02_dc2_catalogs.Object
WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), CIRCLE('ICRS', {{ ra }}, {{ dec }}, {{ radius_near }})) = 1
AND {{ band }}_cModelFlux BETWEEN {{ min_flux }} AND {{ max_flux }}
