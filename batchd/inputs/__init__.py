"""What users send: samples tables, workflow definitions, job definitions and templates, validated
completely before anything is stored. Imports nothing of the daemon (only batchd's core modules)."""
