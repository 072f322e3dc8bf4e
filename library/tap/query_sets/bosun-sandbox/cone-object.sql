SELECT '{{ query_id }}' AS query_id, 'cone-object' AS template, objectId, ra, dec, r_mag, extendedness
FROM sandbox.objects
WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {{ ra }}, {{ dec }}, {{ radius }})) = 1
