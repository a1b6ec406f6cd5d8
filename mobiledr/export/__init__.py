"""Export: checkpoint -> deployment bundle (graph, formats, golden vectors, manifest)."""
