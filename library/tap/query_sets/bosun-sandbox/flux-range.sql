SELECT '{{ query_id }}' AS query_id, 'flux-range' AS template, objectId, ra, dec, {{ band }}_flux
FROM sandbox.objects
WHERE {{ band }}_flux BETWEEN {{ min_flux }} AND {{ max_flux }}
