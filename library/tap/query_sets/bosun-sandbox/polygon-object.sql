SELECT '{{ query_id }}' AS query_id, 'polygon-object' AS template, objectId, ra, dec, g_mag, r_mag, i_mag
FROM sandbox.objects
WHERE CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', {{ polygon }})) = 1
