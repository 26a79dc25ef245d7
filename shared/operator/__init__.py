"""What operators run against a live system through the public HTTP API: `loyalty apply`, `loyalty import`,
`loyalty demo`. Pure parts (file validation, diffs, CSV rows, demo data) are apart from the HTTP calls."""
