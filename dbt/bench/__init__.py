"""The benchmark suite of ``dbt bench``: registry (suite), timing (measure), runs (runner), output (report)."""
