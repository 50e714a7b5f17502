"""Settings: the one frozen settings object, its converters, SIGHUP reload and start-up checks."""
