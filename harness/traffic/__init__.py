"""Traffic helpers: control-channel tap, frame building, generators."""
