"""Where a peer runs: local processes, Docker containers (docker SDK) and their image builds."""
