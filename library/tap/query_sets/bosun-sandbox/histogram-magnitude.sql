SELECT '{{ query_id }}' AS query_id, COUNT(*) AS n, FLOOR(r_mag) AS bin
FROM sandbox.objects
WHERE extendedness = 0 AND r_mag BETWEEN {{ min_mag }} - 5 AND {{ max_mag }} + 5
GROUP BY bin
ORDER BY bin
