"""The ``celebface`` command line: one module per subcommand, each wrapping the library."""
