"""Application jobs around the engine: they read prompt files in the ingest formats, run a decoder
(`engine.factory.open_decoder`) and write results. The engine itself does no file I/O."""
