"""What batchd and batchctl share without importing each other: the version, the job and
workflow states (`model`) and both programs' exit codes (`exitcodes`). Standard library only,
so importing it costs batchctl's start-up nothing measurable."""

__version__ = "0.1.0"
